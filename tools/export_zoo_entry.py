"""Re-export a bundled zoo entry from its own archive, to add benchmarks to its card without
retraining (same parameters, config and data card; calibration and evaluations recomputed)::

    python tools/export_zoo_entry.py --reexport mf-minilm --eval mmlu,gsm8k,alpaca_heldout

Retraining an entry from its committed recipe is ``routellm-jax zoo build NAME``
(``model_zoo/recipes.py``); exporting a training run is ``routellm-jax zoo export``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

from routellm_jax.data.judge_split import reference_prompts
from routellm_jax.eval.judge_heldout import HELDOUT_BENCHMARKS
from routellm_jax.models.registry import get_architecture
from routellm_jax.publish.build import check_heldout_clean, heldout_evals, load_recipe
from routellm_jax.publish.export import ExportSpec, export_entry
from routellm_jax.publish.pack import update_manifest
from routellm_jax.zoo import hub
from routellm_jax.zoo.entry import read_entry

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "model_zoo" / "recipes.py"


def reexport(name: str, *, out_dir: Path, evals: list[str], data_dir: str | None) -> int:
    """Re-export a bundled entry from its own archive (same parameters, config, data card,
    description and license; calibration and evaluations recomputed): adds benchmarks to a card
    without retraining."""
    manifest = hub.Manifest.load(out_dir / "manifest.json")
    with tempfile.TemporaryDirectory() as tmp:
        card, params = read_entry(hub.pull(name, manifest=manifest, cache_dir=Path(tmp)))
    arch = get_architecture(card.architecture)
    config = card.arch_config(arch.config_cls)
    heldout = [b for b in evals if b in HELDOUT_BENCHMARKS]
    if heldout:
        check_heldout_clean(card.data, heldout, f"bundled entry {name}")
    extra = heldout_evals(
        (card.architecture, config, params),
        heldout,
        entry_name=name,
        command=f"python tools/export_zoo_entry.py --reexport {name} --eval {','.join(evals)}",
        data_dir=data_dir,
    )
    prompts, what = reference_prompts(data_dir=data_dir)
    spec = ExportSpec(
        name=card.name,
        version=card.version,
        # The recipe's description (it may have been updated since the entry was built).
        description=load_recipe(RECIPES, name).description,
        calibration_prompts=prompts,
        calibration_reference=what,
        data_card=card.data,
        license=card.license,
        strong=card.default_strong,
        weak=card.default_weak,
        bundle_limit=hub.BUNDLED_LIMIT_BYTES,
        eval_benchmarks=[b for b in evals if b not in HELDOUT_BENCHMARKS],
        eval_results=extra,
    )
    build = Path(tempfile.mkdtemp(prefix=f"reexport-{name}-"))
    try:
        result = export_entry(card.architecture, config, params, build, spec, data_dir=data_dir)
        archive = out_dir / result.archive.name
        shutil.copyfile(result.archive, archive)
        result = dataclasses.replace(result, archive=archive)
        entry = update_manifest(out_dir / "manifest.json", result, bundled=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"re-exported {entry.key}: {archive} ({result.size} bytes, sha256 {result.sha256})")
    for e in result.card.evals:
        print(f"  {e.benchmark}: APGR {e.apgr:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of this tool."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reexport",
        action="append",
        required=True,
        help="re-export this bundled entry from its own archive with --eval's benchmarks",
    )
    parser.add_argument("--out-dir", default=str(REPO / "model_zoo"), help="the zoo folder")
    parser.add_argument(
        "--eval",
        default="mmlu,gsm8k",
        help="benchmarks for the card (also alpaca_heldout, arena_heldout: the held-out judge sets)",
    )
    parser.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    evals = [b for b in args.eval.split(",") if b]
    for name in args.reexport:
        reexport(name, out_dir=Path(args.out_dir), evals=evals, data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
