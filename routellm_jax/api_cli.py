"""``routellm-jax route`` and ``routellm-jax calibrate``: the inference API on the command line.

Examples::

    routellm-jax route "What is 2+2?" "Prove that there are infinitely many primes"
    routellm-jax route --router mf-minilm --threshold 0.4 "Write a haiku"
    routellm-jax route --input prompts.jsonl --output routed.jsonl --strong-share 0.3
    routellm-jax calibrate --router mf-minilm --prompts my_traffic.jsonl --strong-share 0.2

Prompt files are JSONL (one object per line with a ``"prompt"`` field, or a bare JSON string) or
plain text (``.txt``: one prompt per line). Output JSONL keeps each input object and adds
``win_rate``, ``strong``, ``model`` and ``threshold``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_SHARE = 0.5
# routellm_jax.api.DEFAULT_ROUTER, repeated so the CLI parser imports no numpy (tests/zoo checks).
DEFAULT_ROUTER_NAME = "irt-shape-minilm"


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{"prompt": str, ...}`` of a JSONL or ``.txt`` file; errors name the file and line.

    Example:
        >>> read_prompt_file("prompts.jsonl")[0]["prompt"]  # doctest: +SKIP
        'What is 2+2?'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such prompt file") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".txt":
            rows.append({"prompt": line})
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        if isinstance(obj, str):
            obj = {"prompt": obj}
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise ValueError(f"{path}:{lineno}: expected an object with a string 'prompt' field")
        rows.append(obj)
    return rows


def _add_router_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--router",
        default=DEFAULT_ROUTER_NAME,
        help="zoo name (name or name@version), entry archive URL, or local entry folder/.tar "
        f"(default: {DEFAULT_ROUTER_NAME})",
    )
    parser.add_argument("--strong", default=None, help="strong model name (default: the card's)")
    parser.add_argument("--weak", default=None, help="weak model name (default: the card's)")
    parser.add_argument("--manifest", default=None, help="zoo manifest path or URL")
    parser.add_argument(
        "--cache-dir", default=None, help="cache root (default: ROUTELLM_JAX_CACHE)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="prompts per forward pass")
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default=None,
        help="encoder precision (MiniLM, bert and causal_llm routers): float32 (default, exact) "
        "or bfloat16 "
        "(bf16 matmuls with float32 accumulation: win rates within ~2e-3, faster on CPUs with "
        "AVX512-BF16/AMX and on accelerators)",
    )


def _load(args: argparse.Namespace):
    from routellm_jax.api import load

    return load(
        args.router,
        cache_dir=args.cache_dir,
        manifest=args.manifest,
        max_batch=args.batch_size,
        precision=getattr(args, "precision", None),
    )


def add_route_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``routellm-jax route``."""
    parser.add_argument("prompts", nargs="*", help="prompts to route (or use --input)")
    _add_router_arguments(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, default=None, help="route strong if win rate >= X")
    how.add_argument(
        "--strong-share",
        type=float,
        default=None,
        help=f"share of calls to the strong model, via the calibration table (default {DEFAULT_SHARE})",
    )
    parser.add_argument("--input", default=None, help="JSONL (or .txt) file of prompts")
    parser.add_argument("--output", default=None, help="write JSONL here (default: stdout)")
    parser.add_argument("--json", action="store_true", help="print JSONL even for prompt arguments")
    parser.add_argument("--stats", action="store_true", help="print timings to stderr")


def run_route(args: argparse.Namespace) -> int:
    """Route the prompts; print win rate and chosen model per prompt (JSONL for files)."""
    rows = [{"prompt": p} for p in args.prompts]
    if args.input:
        rows += read_prompt_file(args.input)
    if not rows:
        print("routellm-jax route: give prompts as arguments or --input FILE", file=sys.stderr)
        return 2
    router = _load(args)
    share = args.strong_share
    if args.threshold is None and share is None:
        share = DEFAULT_SHARE
    decisions = router.decide(
        [r["prompt"] for r in rows],
        threshold=args.threshold,
        strong_share=share,
        strong=args.strong,
        weak=args.weak,
    )
    as_json = args.json or args.input is not None or args.output is not None
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        for row, d in zip(rows, decisions):
            if as_json:
                out.write(json.dumps({**row, **d}, ensure_ascii=False) + "\n")
            else:
                shown = row["prompt"] if len(row["prompt"]) <= 60 else row["prompt"][:57] + "..."
                out.write(f"{d['win_rate']:.4f}\t{d['model']}\t{shown}\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if not as_json:
        how = f"strong share {share:.0%}" if args.threshold is None else "given threshold"
        print(
            f"# router {router.name}: threshold {decisions[0]['threshold']:.4f} ({how}); "
            f"columns: P(strong wins), chosen model, prompt",
            file=sys.stderr,
        )
    if args.stats:
        print(json.dumps(router.stats), file=sys.stderr)
    return 0


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``routellm-jax calibrate``."""
    _add_router_arguments(parser)
    parser.add_argument("--prompts", required=True, help="JSONL (or .txt) file of your prompts")
    parser.add_argument(
        "--strong-share", type=float, required=True, help="wanted share of strong calls (0..1)"
    )
    parser.add_argument(
        "--output", default=None, help="write the full calibration table (JSON) here"
    )


def run_calibrate(args: argparse.Namespace) -> int:
    """Print the threshold that sends ``--strong-share`` of the given prompts to the strong model."""
    import dataclasses

    rows = read_prompt_file(args.prompts)
    if not rows:
        print(f"routellm-jax calibrate: {args.prompts} has no prompts", file=sys.stderr)
        return 2
    router = _load(args)
    threshold = router.calibrate(
        [r["prompt"] for r in rows],
        args.strong_share,
        strong=args.strong,
        weak=args.weak,
        reference=f"{args.prompts} ({len(rows)} prompts)",
    )
    table = router.calibration(args.strong, args.weak)
    print(
        json.dumps(
            {
                "router": router.name,
                "strong": table.strong,
                "weak": table.weak,
                "strong_share": args.strong_share,
                "threshold": threshold,
                "n_prompts": len(rows),
            }
        )
    )
    if args.output:
        Path(args.output).write_text(json.dumps(dataclasses.asdict(table), indent=2) + "\n")
    return 0
