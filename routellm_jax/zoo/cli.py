"""``routellm-jax zoo list|pull|verify|export|build``.

Examples::

    routellm-jax zoo list
    routellm-jax zoo pull mf-minilm
    routellm-jax zoo verify mf-minilm            # or a local entry folder
    routellm-jax zoo export --workdir runs/mf --name mf-minilm --description "..." \\
        --license Apache-2.0 --bundle               # into model_zoo/ + manifest
    routellm-jax zoo build irt-mix-minilm        # retrain an entry from model_zoo/recipes.py
    routellm-jax zoo build irt-mix-minilm --out-dir model_zoo --check   # replace it, same numbers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from routellm_jax import paths
from routellm_jax.zoo import hub
from routellm_jax.zoo.card import DataCard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``routellm-jax zoo``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1].rstrip()
    sub = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--manifest", default=None, help="manifest path or URL")
        p.add_argument("--cache-dir", default=None, help="cache root (default: ROUTELLM_JAX_CACHE)")

    p = sub.add_parser("list", help="list the manifest's entries")
    common(p)
    p.add_argument("--json", action="store_true", help="print the manifest entries as JSON")

    p = sub.add_parser("pull", help="download, verify and unpack an entry into the cache")
    common(p)
    p.add_argument("name", help="entry name (name or name@version)")
    p.add_argument("--force", action="store_true", help="download again even if cached")

    p = sub.add_parser("verify", help="re-check a pulled entry (or an entry folder) file by file")
    common(p)
    p.add_argument("name", help="entry name, or a local entry folder")

    p = sub.add_parser("export", help="export a training run's checkpoint as a zoo entry")
    p.add_argument("--workdir", required=True, help="the training run's folder")
    p.add_argument("--name", required=True, help="entry name, e.g. mf-minilm")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--description", default="")
    p.add_argument("--license", default="")
    p.add_argument(
        "--out-dir",
        default=None,
        help="where to write: a folder or an object-store URL (gs://BUCKET/RUN/export; "
        "default: model_zoo/)",
    )
    p.add_argument(
        "--manifest", default=None, help="manifest to update (default: OUT_DIR/manifest.json)"
    )
    p.add_argument("--bundle", action="store_true", help="list as a bundled entry (< 5 MB)")
    p.add_argument("--url", action="append", default=[], help="published URL (repeatable)")
    p.add_argument(
        "--eval",
        default="mmlu,gsm8k",
        help="benchmarks to evaluate into the card (comma-separated; '' for none)",
    )
    p.add_argument("--data-card", default=None, help="JSON data card (default: the run's)")
    p.add_argument("--data-dir", default=None, help="routing data folder")
    p.add_argument("--strong", default=None, help="default strong model of the card")
    p.add_argument("--weak", default=None, help="default weak model of the card")

    p = sub.add_parser(
        "build",
        help="rebuild a zoo entry from its committed recipe (train, export, compare)",
        description="Train the entry's experiment config (model_zoo/recipes.py: get_config(NAME)) "
        "into a fresh run folder, export it with its recipe's card text and benchmarks, list it "
        "in OUT_DIR/manifest.json, and print its APGRs beside the ones the repository's "
        "manifest quotes. Needs the routing data (ROUTELLM_JAX_DATA or ../shared/data).",
    )
    p.add_argument("name", nargs="?", help="entry name (see model_zoo/recipes.py)")
    p.add_argument("--all", action="store_true", help="every entry of the recipes file")
    p.add_argument(
        "--recipes",
        default=None,
        help="recipes file (default: the repository's model_zoo/recipes.py)",
    )
    p.add_argument(
        "--workdir", default=None, help="run folder root (default: runs/zoo/NAME per entry)"
    )
    p.add_argument("--out-dir", default="zoo_build", help="where the entry and manifest go")
    p.add_argument(
        "--compare-to",
        default=None,
        help="manifest quoting the numbers to compare with (default: the repository's)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a rebuilt APGR differs from the quoted one by more than --tolerance",
    )
    p.add_argument("--tolerance", type=float, default=0.0, help="allowed APGR difference")
    p.add_argument(
        "--reuse-run",
        action="store_true",
        help="export the run folder's checkpoint when it holds the final step (no retraining)",
    )
    p.add_argument("--data-dir", default=None, help="routing data folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _build(args: argparse.Namespace) -> int:
    # Building trains and exports: above the inference API, imported only for this action.
    from routellm_jax.publish.build import (
        RecipeError,
        build_entry,
        compare_evals,
        load_recipe,
        mismatches,
    )
    from routellm_jax.training.config import expand_sweep, split_config_arg
    from routellm_jax.zoo.manifest import Manifest

    if bool(args.all) == bool(args.name):
        raise RecipeError("zoo build: give an entry NAME or --all")
    if args.recipes is None:
        args.recipes = str(paths.repo_root() / "model_zoo" / "recipes.py")
    names = (
        [args.name] if args.name else [split_config_arg(s)[1] for s in expand_sweep(args.recipes)]
    )
    reference = Manifest.load(args.compare_to) if args.compare_to else Manifest.load()
    recipes = [load_recipe(args.recipes, n) for n in names]  # every recipe checked before work
    failed = []
    for recipe in recipes:
        workdir = Path(args.workdir or "runs/zoo") / recipe.name
        print(f"building {recipe.name} from {recipe.config} in {workdir}", flush=True)
        result = build_entry(
            recipe,
            workdir=workdir,
            out_dir=Path(args.out_dir),
            data_dir=args.data_dir,
            retrain=not args.reuse_run,
            progress=not args.no_progress,
        )
        print(
            f"built {recipe.name}: {result.archive} ({result.size} bytes, sha256 {result.sha256})"
        )
        print(f"  {'benchmark':<16} {'quoted':>8} {'rebuilt':>8} {'delta':>8}")
        rows = compare_evals(result.card.evals, reference, recipe.name)
        for row in rows:
            cells = ["-" if v is None else f"{v:.4f}" for v in (row.quoted, row.rebuilt, row.delta)]
            print(f"  {row.benchmark:<16} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8}")
        failed += [
            f"{recipe.name} {r.benchmark} {r.delta:+.4f}" for r in mismatches(rows, args.tolerance)
        ]
    if failed and args.check:
        print("rebuilt numbers differ from the quoted ones: " + "; ".join(failed))
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:

    manifest = hub.Manifest.load(args.manifest)
    if args.json:
        print(json.dumps(manifest.to_json()["entries"], indent=2))
        return 0
    print(f"# {manifest.location}")
    print(
        f"{'name':<22} {'version':<9} {'arch':<12} {'size':>9}  {'where':<8} cached  "
        f"{'APGR mmlu/gsm8k':<15}  description"
    )
    for e in sorted(manifest.entries, key=lambda e: (e.name, e.version)):
        size = sum(f.size for f in e.files)
        urls = e.files[0].urls
        # An entry listed without URLs is published nowhere: `zoo pull` says how to build it.
        where = "build" if not urls else hub.url_scheme(urls[0]) or "bundled"
        cached = hub.is_cached(e, args.cache_dir)
        # The card's APGRs as the manifest quotes them; "~": MMLU on the hashed 10% subset.
        quoted = [e.apgr(b) for b in ("mmlu", "gsm8k")]
        scores = "/".join("-" if q is None else f"{'~' * q[1]}{q[0]:.3f}" for q in quoted)
        print(
            f"{e.name:<22} {e.version:<9} {e.architecture:<12} {size / 1e6:>7.2f}MB  {where:<8} "
            f"{'yes' if cached else 'no':<6}  {scores:<15}  {e.description}"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:

    local = Path(args.name)
    if local.is_dir():
        hub.verify_entry_dir(local)
        print(f"ok: {local}: every checkpoint file matches its card")
        return 0
    path = hub.verify_cached(args.name, manifest=args.manifest, cache_dir=args.cache_dir)
    print(f"ok: {args.name}: {path} matches the manifest, its unpacked files and its card")
    return 0


def _export(args: argparse.Namespace) -> int:
    # Exporting sits above the inference API (it calibrates and round-trips through a Router):
    # imported only for this action, so list/pull/verify never load JAX.
    from routellm_jax.cli import UsageError
    from routellm_jax.publish.export import ExportSpec, export_from_workdir
    from routellm_jax.publish.pack import update_manifest

    # Before any work: the manifest would refuse them after the export (they become cache folders).
    hub.check_name(args.name, "--name")
    hub.check_version(args.version, "--version")
    # Local folders or object-store URLs (gs://bucket/run/export), both as epath paths.
    out_dir = paths.location(args.out_dir or paths.repo_root() / "model_zoo")
    manifest = paths.location(args.manifest) if args.manifest else out_dir / "manifest.json"
    # The manifest listing comes last; what it needs is checked before the (long) export.
    if not args.bundle and not args.url:
        raise UsageError(
            "say where the entry will be fetched from: --bundle (the archive stays next to the "
            "manifest; under 5 MB) or --url URL (repeatable; where you will publish the archive)"
        )
    if args.bundle and not f"{out_dir}/".startswith(f"{str(manifest.parent).rstrip('/')}/"):
        raise UsageError(
            f"--bundle: the archive is written to {out_dir}, which is not under the manifest's "
            f"folder {manifest.parent}; a bundled entry must sit next to its manifest"
        )
    data_card = None
    if args.data_card:
        data_card = DataCard(**json.loads(Path(args.data_card).read_text()))
    spec = ExportSpec(
        name=args.name,
        version=args.version,
        description=args.description,
        license=args.license,
        data_card=data_card,
        eval_benchmarks=[b for b in args.eval.split(",") if b],
        strong=args.strong,
        weak=args.weak,
        bundle_limit=hub.BUNDLED_LIMIT_BYTES if args.bundle else None,
    )
    result = export_from_workdir(
        args.workdir, out_dir, spec, step=args.step, data_dir=args.data_dir
    )
    # Printed before the manifest is touched: a failure there loses none of these numbers.
    print(
        f"exported {args.name}@{args.version}: {result.entry_dir} -> {result.archive} "
        f"({result.size} bytes, sha256 {result.sha256})",
        flush=True,
    )
    for e in result.card.evals:
        print(f"  {e.benchmark}: APGR {e.apgr:.4f}  ({e.command})", flush=True)
    entry = update_manifest(manifest, result, urls=args.url, bundled=args.bundle)
    print(f"listed {entry.key} in {manifest}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``zoo ACTION``. Errors propagate to :func:`routellm_jax.cli.main`, which prints them
    on one line naming the file or entry: exit code 2 for the user's to fix (unknown entry, bad
    manifest, an entry published nowhere, which says how to build it), 1 for a failed download
    or an altered file."""

    if args.zoo_command == "list":
        return _list(args)
    if args.zoo_command == "pull":
        path = hub.pull(
            args.name, manifest=args.manifest, cache_dir=args.cache_dir, force=args.force
        )
        hub.verify_entry_dir(path)
        print(path)
        return 0
    if args.zoo_command == "verify":
        return _verify(args)
    if args.zoo_command == "build":
        return _build(args)
    return _export(args)
