"""``routellm-jax eval``: score a router on a benchmark and print the results table.

Examples::

    routellm-jax eval --benchmark mmlu --router random
    routellm-jax eval --benchmark gsm8k --router oracle --out results/gsm8k
    routellm-jax eval --benchmark mt-bench --strong unify --weak martian --router prompt_length
    routellm-jax eval --benchmark scores.parquet --strong gpt-4 --weak mixtral --router my-zoo-entry
    routellm-jax eval --dev-suite --router irt-shape-minilm --out results/dev

Every table also shows the random router (expected curve, and the mean over ``--random-seeds``
seeds) and the oracle, so the router is always seen against them. ``--dev-suite`` scores the
router on the development suite (:mod:`routellm_jax.eval.dev_suite`: APGR per task-type group and
the strong share per group at 50% overall), beside prompt length and the oracle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

import numpy as np

import routellm_jax
from routellm_jax.cli import UsageError, error_text, nonnegative_float, positive_int, writable_dir
from routellm_jax.eval import dev_suite as D
from routellm_jax.eval import evaluate as E
from routellm_jax.eval.baselines import (
    BASELINES,
    baseline_win_rates,
    oracle_win_rates,
    prompt_length_router,
    random_router,
)
from routellm_jax.eval.benchmarks import DroppedScoresWarning, load_benchmark
from routellm_jax.eval.cost import DEFAULT_PRICES, cost_model, parse_price
from routellm_jax.eval.plots import results_json, results_markdown, write_results
from routellm_jax.models.embedding_store import embed_into_store, embedding_store
from routellm_jax.paths import DataDirNotFound

_ROUTER_HELP = (
    "a baseline (random: seeded uniform win rates; oracle: from the benchmark's labels, reported as "
    "the paper's oracle curve; prompt_length: longer prompt -> strong) or a zoo name / checkpoint "
    "path loaded with routellm_jax.load(NAME)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``eval`` arguments on ``parser``.

    Example:
        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> p.parse_args(["--benchmark", "gsm8k"]).router
        'random'
    """
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "examples:" + __doc__.split("Examples::", 1)[1].rstrip()
    parser.add_argument(
        "--benchmark",
        default=None,
        help="mmlu | gsm8k | mt-bench | path to an outcome table (.parquet from "
        "OutcomeTable.save, or a long prompt,model,score CSV, or a wide CSV with a prompt column "
        "and one score column per model)",
    )
    parser.add_argument(
        "--dev-suite",
        action="store_true",
        help="score on the development suite (task-type groups of training-side data, the "
        "paper's pair) instead of a benchmark; --out gets dev_suite.md/.json/.png",
    )
    parser.add_argument("--router", default="random", help=_ROUTER_HELP)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="routing data folder (default: $ROUTELLM_JAX_DATA or ../shared/data)",
    )
    parser.add_argument("--strong", default=None, help="strong model (mt-bench, outcome tables)")
    parser.add_argument("--weak", default=None, help="weak model (mt-bench, outcome tables)")
    parser.add_argument(
        "--judgments",
        default=None,
        help="mt-bench: FastChat single-answer judgment file (default: the shared gpt-4_single.jsonl)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random router (default 0)")
    parser.add_argument(
        "--random-seeds",
        type=positive_int,
        default=20,
        help="number of seeds averaged for the 'random (mean)' reference row (default 20)",
    )
    parser.add_argument(
        "--exclude-golden",
        action="store_true",
        help="drop the 1,500-question MMLU golden split (required when the router trained on it)",
    )
    parser.add_argument(
        "--num-thresholds",
        type=positive_int,
        default=10,
        help="quantile bins of the win rates; curve points = this + 1 (reference: 10)",
    )
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="MODEL=IN,OUT",
        help="USD per 1M input/output tokens for a model (repeatable; defaults: the paper's "
        "gpt-4-1106-preview 10,30 and Mixtral-8x7B 0.24,0.24, then the model table's prices)",
    )
    parser.add_argument(
        "--input-tokens", type=nonnegative_float, default=95, help="tokens per request in"
    )
    parser.add_argument(
        "--output-tokens", type=nonnegative_float, default=264, help="tokens per request out"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="folder for <benchmark>.png/.json/.md (created and checked before any work)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")


def _cost_model(args: argparse.Namespace, strong: str, weak: str):

    prices = dict(DEFAULT_PRICES)
    for spec in args.price:
        name, price = parse_price(spec)
        prices[name] = price
    try:
        return cost_model(
            strong, weak, prices, input_tokens=args.input_tokens, output_tokens=args.output_tokens
        )
    except KeyError as err:
        # No price for a model: the table leaves the cost columns empty and says why.
        print(f"routellm-jax eval: note: no cost columns: {error_text(err)}", file=sys.stderr)
        return None


def _zoo_win_rates(name: str, prompts: list[str], strong: str, weak: str):
    """Win rates of a zoo entry / checkpoint for the benchmark's pair when the router knows both
    models, else for the router's own default pair (said on stderr)."""

    router = routellm_jax.load(name)
    # A frozen encoder's vectors come from (and go into) the machine's embedding store, shared
    # with training and export: a benchmark is embedded once per machine, not once per eval.
    store = embedding_store(getattr(router, "featurizer", None))
    if store is not None:
        embed_into_store(router.featurizer, prompts, store, progress=True)
        router = routellm_jax.load(name, fuse_encoder=False, featurizer=router.featurizer)
    models = set(getattr(router, "models", ()) or ())
    if strong in models and weak in models:
        return np.asarray(router.win_rate(prompts, strong=strong, weak=weak), dtype=np.float64)
    print(
        f"note: router {name!r} does not know both {strong!r} and {weak!r}; "
        "using its default strong/weak pair",
        file=sys.stderr,
    )
    return np.asarray(router.win_rate(prompts), dtype=np.float64)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; returns the exit code. Bad input (an unknown benchmark or model, an
    unreadable outcome table, a router that cannot be loaded) raises
    :class:`~routellm_jax.cli.UsageError`, which ``routellm-jax`` prints as one line with exit
    code 2; a reader's warnings (nan/inf scores dropped) are printed as one line each.
    """

    if bool(args.benchmark) == bool(args.dev_suite):
        raise UsageError("give either --benchmark or --dev-suite")
    if args.out:
        writable_dir(args.out)  # before the work, not after it
    if args.dev_suite:
        return run_dev_suite(args)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DroppedScoresWarning)
            bench = load_benchmark(
                args.benchmark,
                data_dir=args.data_dir,
                strong=args.strong,
                weak=args.weak,
                exclude_golden=args.exclude_golden,
                judgments=args.judgments,
            )
        cm = _cost_model(args, bench.strong_model, bench.weak_model)
    except (ValueError, KeyError, FileNotFoundError, DataDirNotFound) as err:
        raise UsageError(error_text(err)) from err
    finally:  # also when the benchmark then fails: a dropped score may be why
        for w in caught:
            if issubclass(w.category, DroppedScoresWarning):
                print(f"routellm-jax eval: warning: {w.message}", file=sys.stderr)
            else:  # not ours to reword
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    source = bench.metadata.get("source", bench.name)
    pair = f"{bench.strong_model!r} and {bench.weak_model!r}"
    gap = bench.strong_quality - bench.weak_quality
    if not math.isfinite(gap):
        raise UsageError(f"{source}: the scores of {pair} are not all finite numbers")
    if gap == 0:
        raise UsageError(
            f"{source}: {pair} have the same mean score ({bench.strong_quality:.4g}) on these "
            f"{len(bench)} prompts, so the share of their gap a router recovers (PGR) is undefined"
        )

    k = args.num_thresholds
    refs = E.reference_results(
        bench, num_thresholds=k, random_seeds=range(args.random_seeds), cost_model=cm
    )
    if args.router == "oracle":
        results = refs  # the oracle row is the router asked for
    else:
        if args.router in BASELINES:
            win_rates = baseline_win_rates(args.router, bench, seed=args.seed)
            name = f"random (seed {args.seed})" if args.router == "random" else args.router
        else:
            try:
                win_rates = _zoo_win_rates(
                    args.router, list(bench.prompts), bench.strong_model, bench.weak_model
                )
            except (ImportError, OSError, KeyError, ValueError) as err:
                raise UsageError(f"cannot load router {args.router!r}: {error_text(err)}") from err
            name = args.router
        try:
            mine = E.evaluate_win_rates(
                bench, win_rates, name=name, num_thresholds=k, cost_model=cm
            )
        except ValueError as err:
            raise UsageError(f"router {name!r}: {err}") from err
        results = [mine, *refs]

    if args.json:
        print(json.dumps(results_json(bench, results), indent=2, default=str))
    else:
        print(results_markdown(bench, results))
    if args.out:
        paths = write_results(args.out, bench, results)
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def run_dev_suite(args: argparse.Namespace) -> int:
    """``--dev-suite``: the router's per-group APGR and strong share beside prompt length and the
    oracle (and random, when the router is not random); returns the exit code."""

    try:
        suite = D.build_dev_suite(args.data_dir)
    except (ValueError, KeyError, FileNotFoundError, DataDirNotFound) as err:
        raise UsageError(error_text(err)) from err
    some = next(iter(suite.values()))
    strong, weak = some.strong_model, some.weak_model

    def rates(router: str) -> dict[str, np.ndarray]:
        if router == "oracle":
            return {g: oracle_win_rates(b) for g, b in suite.items()}
        if router == "random":
            return D.route_suite(suite, lambda ps: random_router(ps, seed=args.seed))
        if router == "prompt_length":
            return D.route_suite(suite, prompt_length_router)
        try:
            return D.route_suite(suite, lambda ps: _zoo_win_rates(router, ps, strong, weak))
        except (ImportError, OSError, KeyError, ValueError) as err:
            raise UsageError(f"cannot load router {router!r}: {error_text(err)}") from err

    names = list(dict.fromkeys([args.router, "prompt_length", "random", "oracle"]))
    rows = [D.score_dev_suite(suite, rates(n), n) for n in names]
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(D.dev_table_markdown(rows, suite))
    if args.out:
        paths = D.write_dev_report(args.out, rows, suite)
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
