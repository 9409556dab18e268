"""``routellm-jax route`` and ``routellm-jax calibrate``: the inference API on the command line.

Examples::

    routellm-jax route "What is 2+2?" "Prove that there are infinitely many primes"
    routellm-jax route --router mf-minilm --threshold 0.4 "Write a haiku"
    routellm-jax route --input prompts.jsonl --output routed.jsonl --strong-share 0.3
    routellm-jax calibrate --router mf-minilm --prompts my_traffic.jsonl --strong-share 0.2
    routellm-jax route --models gpt-4-1106-preview,claude-2.1,mixtral-8x7b-instruct-v0.1 \
        --prices prices.json --budget 0.004 "Prove that sqrt(2) is irrational"

With ``--models`` the router chooses one of N models per prompt (model-aware routers: irt, mf,
sw_ranking) under one policy: ``--budget`` (per request), ``--batch-budget`` (for all the prompts
together), ``--quality-floor`` or ``--tradeoff`` (:mod:`routellm_jax.eval.policy`). ``--prices``
is a JSON object ``{"<model>": <price>}``, a price being a number (per call) or an object with
``per_call``, ``input_per_1k`` and ``output_per_1k``; input tokens are estimated from the prompt
(4 characters a token), output tokens are ``--output-tokens``.

Prompt files are UTF-8 JSONL (one object per line with a ``"prompt"`` field, or a bare JSON
string) or plain text (``.txt``: one prompt per line). Output JSONL keeps each input object and adds
``win_rate``, ``strong``, ``model`` and ``threshold``; an input object that already has one of
these keys is an error naming its file and line (nothing is overwritten silently). A file that is
not UTF-8, a line that is not JSON, a prompt that is not text (an unpaired UTF-16 surrogate such as
``"\\ud800"``) are errors naming the file and line, before the router is loaded; so are bad flag
values and an ``--output`` that cannot be written. ``--output`` is written in full or not at all.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from routellm_jax.cli import (
    UsageError,
    nonnegative_float,
    open_unit_interval,
    output_file,
    positive_int,
    unit_interval,
)

DEFAULT_SHARE = 0.5
# routellm_jax.api.DEFAULT_ROUTER, repeated so the CLI parser imports no numpy (tests/zoo checks).
DEFAULT_ROUTER_NAME = "irt-mix-minilm"
# Fields route adds to each output row; an input row that has them is refused, not overwritten.
DECISION_FIELDS = ("win_rate", "strong", "model", "threshold")
# Fields an N-model route adds (--models).
N_MODEL_FIELDS = ("model", "quality", "cost", "within_budget", "policy", "reason", "candidates")
# The N-model policy flags and the routellm_jax.eval.policy kinds they set.
POLICY_FLAGS = {
    "budget": "budget",
    "batch_budget": "batch_budget",
    "quality_floor": "quality_floor",
    "tradeoff": "tradeoff",
}


def _check_prompt(prompt: Any, where: str) -> str:
    # routellm_jax.api imports numpy and the zoo: only when a command runs, never for the parser.
    from routellm_jax.api import check_prompt

    try:
        return check_prompt(prompt, where)
    except ValueError as err:
        raise UsageError(str(err)) from None


def read_prompt_file(path: str | Path, *, reserved: Collection[str] = ()) -> list[dict[str, Any]]:
    """Rows ``{"prompt": str, ...}`` of a UTF-8 JSONL or ``.txt`` file. Every problem is a
    :class:`~routellm_jax.cli.UsageError` (a ``ValueError``) naming the file and line: a missing or
    unreadable file, bytes that are not UTF-8, a line that is not JSON, no string ``prompt``
    field, a prompt that is not text (an unpaired surrogate), or a key of ``reserved``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such prompt file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is not part of the first prompt
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UsageError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[err.start]:02x}); "
            "prompt files must be UTF-8 text"
        ) from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        if path.suffix == ".txt":
            rows.append({"prompt": line})
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{where}: not valid JSON ({err.msg})") from None
        if isinstance(obj, str):
            obj = {"prompt": obj}
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise UsageError(f"{where}: expected an object with a string 'prompt' field")
        _check_prompt(obj["prompt"], f"{where}: field 'prompt'")
        clash = [k for k in reserved if k in obj]
        if clash:
            raise UsageError(
                f"{where}: the input object already has {clash}, which the output adds; rename "
                "or drop those keys (route never overwrites an input field)"
            )
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
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, help="prompts per forward pass (>= 1)"
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "auto"),
        default=None,
        help="encoder precision (MiniLM, bert and causal_llm routers): float32 (default, exact) "
        "or bfloat16 "
        "(bf16 matmuls with float32 accumulation: win rates within ~2e-3, faster on CPUs with "
        "AVX512-BF16/AMX and on accelerators), or auto (bfloat16 where the device runs it "
        "natively, else float32)",
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
    how.add_argument(
        "--threshold",
        type=unit_interval,
        default=None,
        help="route strong if win rate >= X (a number in [0, 1])",
    )
    how.add_argument(
        "--strong-share",
        type=open_unit_interval,
        default=None,
        help="share of calls to the strong model, strictly between 0 and 1, via the calibration "
        f"table (default {DEFAULT_SHARE})",
    )
    parser.add_argument(
        "--input",
        default=None,
        help="UTF-8 JSONL file of prompts (objects with a 'prompt' field, or JSON strings) or "
        ".txt (one prompt per line). Each output row is the input object plus "
        f"{', '.join(DECISION_FIELDS)}; an input object that already has one of these keys is "
        "an error naming its line (rename the key; nothing is overwritten)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="write JSONL here (default: stdout); its folder is created and checked before any "
        "work, and the file is replaced only when every row is written",
    )
    parser.add_argument("--json", action="store_true", help="print JSONL even for prompt arguments")
    parser.add_argument("--stats", action="store_true", help="print timings to stderr")
    n_model = parser.add_argument_group(
        "N-model routing (model-aware routers: irt, mf, sw_ranking)",
        "choose one of --models per prompt under exactly one policy flag",
    )
    n_model.add_argument(
        "--models", default=None, help="comma-separated candidate models of the router's table"
    )
    n_model.add_argument(
        "--prices",
        default=None,
        help='JSON price file: {"<model>": number per call, or {"per_call", "input_per_1k", '
        '"output_per_1k"}}',
    )
    policy = n_model.add_mutually_exclusive_group()
    policy.add_argument(
        "--budget", type=nonnegative_float, default=None, help="most a request may cost"
    )
    policy.add_argument(
        "--batch-budget",
        type=nonnegative_float,
        default=None,
        help="most all the prompts together may cost (best total expected quality)",
    )
    policy.add_argument(
        "--quality-floor",
        type=unit_interval,
        default=None,
        help="cheapest model whose expected quality reaches X (in [0, 1])",
    )
    policy.add_argument(
        "--tradeoff",
        type=nonnegative_float,
        default=None,
        help="maximise quality - X * cost / (dearest candidate's cost); 0 = best quality",
    )
    n_model.add_argument(
        "--output-tokens",
        type=nonnegative_float,
        default=264,
        help="output tokens per request for per-token prices (default 264, the paper's average)",
    )


def _n_model_request(args: argparse.Namespace) -> tuple[list[str], Any, Any] | None:
    """``(models, prices, policy)`` for ``--models``, or None; every flag problem is a
    :class:`UsageError` naming the flag or the price file and field."""
    chosen = [flag for flag in POLICY_FLAGS if getattr(args, flag, None) is not None]
    if args.models is None:
        if chosen or args.prices is not None:
            used = ", ".join(f"--{f.replace('_', '-')}" for f in chosen) or "--prices"
            raise UsageError(f"{used} needs --models (the candidate models to choose among)")
        return None
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(models) < 2:
        raise UsageError(f"--models: give at least two comma-separated models, got {args.models!r}")
    if args.threshold is not None or args.strong_share is not None:
        raise UsageError("--models chooses by a policy; --threshold/--strong-share are for pairs")
    if args.strong is not None or args.weak is not None:
        raise UsageError("--models replaces --strong/--weak")
    if not chosen:
        raise UsageError(
            "--models needs a policy: --budget, --batch-budget, --quality-floor or --tradeoff"
        )
    if args.prices is None:
        raise UsageError("--models needs --prices FILE (what each candidate costs)")
    # numpy and the policy module load only when a command runs, never for the parser.
    from routellm_jax.eval.policy import Policy, PriceError, read_prices

    try:
        prices = read_prices(args.prices)
    except PriceError as err:
        raise UsageError(str(err)) from None
    missing = [m for m in models if m not in prices]
    if missing:
        raise UsageError(
            f"{args.prices}: no price for model(s) {missing} (priced: {sorted(prices)})"
        )
    flag = chosen[0]
    return models, prices, Policy(POLICY_FLAGS[flag], float(getattr(args, flag)))


def _run_n_models(args: argparse.Namespace, rows: list[dict[str, Any]], request) -> int:
    models, prices, policy = request
    as_json = args.json or args.input is not None or args.output is not None
    with output_file(args.output) as out:
        router = _load(args)
        decisions = router.choose_models(
            [r["prompt"] for r in rows],
            models,
            prices,
            policy,
            output_tokens=args.output_tokens,
        )
        for row, d in zip(rows, decisions):
            if as_json:
                out.write(json.dumps({**row, **d}, ensure_ascii=False) + "\n")
            else:
                shown = row["prompt"] if len(row["prompt"]) <= 50 else row["prompt"][:47] + "..."
                out.write(
                    f"{d['model']}\tquality {d['quality']:.4f}\tcost {d['cost']:.6g}\t"
                    f"{d['reason']}\t{shown}\n"
                )
    if not as_json:
        total = sum(d["cost"] for d in decisions)
        print(
            f"# router {router.name}: {policy.describe()} among {len(models)} models; total cost "
            f"{total:.6g}; columns: chosen model, its expected quality, its cost, why, prompt",
            file=sys.stderr,
        )
    if args.stats:
        print(json.dumps(router.stats), file=sys.stderr)
    return 0


def run_route(args: argparse.Namespace) -> int:
    """Route the prompts; print win rate and chosen model per prompt (JSONL for files)."""
    n_model = _n_model_request(args)
    rows = [
        {"prompt": _check_prompt(p, f"prompt argument {i}")}
        for i, p in enumerate(args.prompts, start=1)
    ]
    if args.input:
        reserved = N_MODEL_FIELDS if n_model is not None else DECISION_FIELDS
        rows += read_prompt_file(args.input, reserved=reserved)
    if not rows:
        raise UsageError("give prompts as arguments or --input FILE")
    if n_model is not None:
        return _run_n_models(args, rows, n_model)
    share = args.strong_share
    if args.threshold is None and share is None:
        share = DEFAULT_SHARE
    as_json = args.json or args.input is not None or args.output is not None
    # The output is opened (its folder created, writability checked) before the router loads.
    with output_file(args.output) as out:
        router = _load(args)
        decisions = router.decide(
            [r["prompt"] for r in rows],
            threshold=args.threshold,
            strong_share=share,
            strong=args.strong,
            weak=args.weak,
        )
        for row, d in zip(rows, decisions):
            if as_json:
                out.write(json.dumps({**row, **d}, ensure_ascii=False) + "\n")
            else:
                shown = row["prompt"] if len(row["prompt"]) <= 60 else row["prompt"][:57] + "..."
                out.write(f"{d['win_rate']:.4f}\t{d['model']}\t{shown}\n")
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
    parser.add_argument(
        "--prompts", required=True, help="UTF-8 JSONL (or .txt) file of your prompts"
    )
    parser.add_argument(
        "--strong-share",
        type=open_unit_interval,
        required=True,
        help="wanted share of strong calls, strictly between 0 and 1",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="write the full calibration table (JSON) here (checked before any work; replaced "
        "only when complete)",
    )


def run_calibrate(args: argparse.Namespace) -> int:
    """Print the threshold that sends ``--strong-share`` of the given prompts to the strong model."""

    rows = read_prompt_file(args.prompts)
    if not rows:
        raise UsageError(f"{args.prompts}: no prompts")
    # The table is small; opening its file first still reports an unwritable path before the work.
    with output_file(args.output) if args.output else contextlib.nullcontext() as out:
        router = _load(args)
        threshold = router.calibrate(
            [r["prompt"] for r in rows],
            args.strong_share,
            strong=args.strong,
            weak=args.weak,
            reference=f"{args.prompts} ({len(rows)} prompts)",
        )
        table = router.calibration(args.strong, args.weak)
        if out is not None:
            out.write(json.dumps(dataclasses.asdict(table), indent=2) + "\n")
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
    return 0
