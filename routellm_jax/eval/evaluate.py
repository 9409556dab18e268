"""Run routers on a benchmark: curve + every metric + cost, as one :class:`RouterResult` each.

The trainer and experiments call :func:`evaluate_win_rates` with a router's win rates on
``benchmark.prompts``; :func:`reference_results` adds the random (expected and over seeds) and
oracle rows that every report shows next to it. :func:`card_record` is the summary a zoo model
card keeps of one result, and :func:`evaluate_benchmarks` scores a router object on the
``routellm-jax eval`` benchmarks into such records (what the zoo exporter puts in a card).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from routellm_jax.eval import metrics as M
from routellm_jax.eval.benchmarks import Benchmark, load_benchmark
from routellm_jax.eval.cost import CostModel, cost_report


@dataclass(frozen=True)
class RouterResult:
    """One router's evaluation.

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> r = evaluate_random_expected(bench)
        >>> r.name, round(r.metrics.apgr_trapezoid, 6)
        ('random (expected)', 0.5)
    """

    name: str
    curve: M.Curve
    metrics: M.RouterMetrics
    cost: dict | None = None
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict. Example: ``json.dumps(result.to_dict())``."""
        return {
            "name": self.name,
            "metrics": self.metrics.to_dict(),
            "curve": self.curve.to_dict(),
            "cost": self.cost,
            "notes": self.notes,
        }


def _result(
    name: str, curve: M.Curve, benchmark: Benchmark, cost_model: CostModel | None, **notes
) -> RouterResult:
    metrics = M.compute_metrics(curve, benchmark.strong_quality, benchmark.weak_quality)
    cost = cost_report(metrics, cost_model, curve.strong_share) if cost_model else None
    return RouterResult(name, curve, metrics, cost, notes)


def evaluate_win_rates(
    benchmark: Benchmark,
    win_rates: np.ndarray,
    *,
    name: str = "router",
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    cost_model: CostModel | None = None,
) -> RouterResult:
    """Score a router from its win rates on ``benchmark.prompts`` (quantile-threshold curve).

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> r = evaluate_win_rates(bench, np.array([0.1, 0.9, 0.2, 0.3]))  # "prove it" ranked first
        >>> r.metrics.apgr_trapezoid, r.metrics.cpt[0.5]
        (0.875, 0.125)
    """
    win_rates = np.asarray(win_rates, dtype=np.float64)
    if win_rates.shape != (len(benchmark),):
        raise ValueError(
            f"router {name!r} gave win rates of shape {win_rates.shape} for "
            f"{len(benchmark)} prompts of {benchmark.name!r}"
        )
    curve = M.threshold_curve(
        win_rates, benchmark.strong_scores, benchmark.weak_scores, num_thresholds, label=name
    )
    return _result(name, curve, benchmark, cost_model, num_thresholds=num_thresholds)


def evaluate_router(
    benchmark: Benchmark,
    router: Callable[[Sequence[str]], np.ndarray],
    *,
    name: str = "router",
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    cost_model: CostModel | None = None,
) -> RouterResult:
    """Call ``router(prompts) -> win rates`` once on all prompts and score it.

    Example:
        >>> from routellm_jax.eval.baselines import prompt_length_router
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> r = evaluate_router(bench, prompt_length_router, name="len")  # longest prompt first
        >>> r.name, r.metrics.apgr_trapezoid
        ('len', 0.875)
    """
    win_rates = router(list(benchmark.prompts))
    return evaluate_win_rates(
        benchmark,
        np.asarray(win_rates),
        name=name,
        num_thresholds=num_thresholds,
        cost_model=cost_model,
    )


def evaluate_oracle(
    benchmark: Benchmark,
    *,
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    budget_rounding: str = "auto",
    cost_model: CostModel | None = None,
) -> RouterResult:
    """The oracle's budget curve (``metrics.oracle_curve``) and metrics. ``budget_rounding="auto"``
    follows the reference per benchmark: ``"floor"`` (``int(c * n)`` calls) for ``mt-bench``, as
    its ``MTBench.get_optimal_accuracy``; ``"interpolate"`` otherwise, which for 0/1 scores is the
    reference's MMLU/GSM8K ``weak + min(c * n, #strong-only-correct)``.

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> round(evaluate_oracle(bench).metrics.apgr_trapezoid, 2)
        0.87
    """
    if budget_rounding == "auto":
        budget_rounding = "floor" if benchmark.name == "mt-bench" else "interpolate"
    curve = M.oracle_curve(
        benchmark.strong_scores,
        benchmark.weak_scores,
        num_thresholds,
        budget_rounding=budget_rounding,
    )
    return _result("oracle", curve, benchmark, cost_model, budget_rounding=budget_rounding)


def evaluate_random_expected(
    benchmark: Benchmark,
    *,
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    cost_model: CostModel | None = None,
) -> RouterResult:
    """The random router's expected (analytic) curve: PGR(c) = c.

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> evaluate_random_expected(bench).metrics.cpt[0.5]
        0.5
    """
    curve = M.random_expected_curve(
        benchmark.strong_quality, benchmark.weak_quality, num_thresholds
    )
    return _result(curve.label, curve, benchmark, cost_model)


def evaluate_random_seeds(
    benchmark: Benchmark,
    seeds: Iterable[int] = range(20),
    *,
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    cost_model: CostModel | None = None,
) -> RouterResult:
    """The random router over several seeds: the mean curve (point by point) and the mean of each
    metric, with standard deviations in ``notes``.

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> r = evaluate_random_seeds(bench, range(5))
        >>> r.notes["seeds"], round(r.notes["apgr_trapezoid_std"], 3)
        ([0, 1, 2, 3, 4], 0.187)
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("evaluate_random_seeds needs at least one seed")
    runs = [
        evaluate_win_rates(
            benchmark,
            M.random_win_rates(len(benchmark), s),
            name=f"random (seed {s})",
            num_thresholds=num_thresholds,
        )
        for s in seeds
    ]
    label = f"random (mean of {len(seeds)} seeds)"
    curve = M.Curve(
        np.mean([r.curve.strong_share for r in runs], axis=0),
        np.mean([r.curve.quality for r in runs], axis=0),
        None,
        label,
    )
    dicts = [r.metrics.to_dict() for r in runs]
    mean = {
        k: float(np.nanmean([d[k] for d in dicts])) for k in dicts[0] if dicts[0][k] is not None
    }
    std = {f"{k}_std": float(np.nanstd([d[k] for d in dicts])) for k in mean}
    levels = tuple(runs[0].metrics.cpt)
    metrics = M.RouterMetrics(
        apgr_trapezoid=mean["apgr_trapezoid"],
        apgr_trapezoid_capped=mean["apgr_trapezoid_capped"],
        apgr_10pt=mean["apgr_10pt"],
        apgr_10pt_capped=mean["apgr_10pt_capped"],
        auc=mean["auc"],
        cpt={lv: float(np.nanmean([r.metrics.cpt[lv] for r in runs])) for lv in levels},
        cpt_reference_interp={
            lv: float(np.mean([r.metrics.cpt_reference_interp[lv] for r in runs])) for lv in levels
        },
        strong_quality=benchmark.strong_quality,
        weak_quality=benchmark.weak_quality,
        max_pgr=mean["max_pgr"],
    )
    cost = cost_report(metrics, cost_model, curve.strong_share) if cost_model else None
    return RouterResult(label, curve, metrics, cost, {"seeds": seeds, **std})


def reference_results(
    benchmark: Benchmark,
    *,
    num_thresholds: int = M.DEFAULT_NUM_THRESHOLDS,
    random_seeds: Iterable[int] = range(20),
    cost_model: CostModel | None = None,
) -> list[RouterResult]:
    """The rows every report shows: random (expected), random (mean over seeds), oracle.

    Example:
        >>> bench = Benchmark("toy", np.array(["hi", "prove it", "2+2?", "a poem"], dtype=object),
        ...                   np.array([1.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0]),
        ...                   "gpt-4", "mixtral")  # only "prove it" needs the strong model
        >>> [r.name for r in reference_results(bench, random_seeds=range(2))]
        ['random (expected)', 'random (mean of 2 seeds)', 'oracle']
    """
    return [
        evaluate_random_expected(benchmark, num_thresholds=num_thresholds, cost_model=cost_model),
        evaluate_random_seeds(
            benchmark, random_seeds, num_thresholds=num_thresholds, cost_model=cost_model
        ),
        evaluate_oracle(benchmark, num_thresholds=num_thresholds, cost_model=cost_model),
    ]


def card_record(
    result: RouterResult, *, benchmark: str, command: str, notes: str
) -> dict[str, Any]:
    """What a model card keeps of one evaluation (the fields of ``zoo.card.EvalResult``):
    ``apgr`` (trapezoid APGR), ``cpt`` (``{"50%": strong-call share first reaching 50% PGR,
    ...}``), the ``command`` that reproduces it, ``notes``, and every numeric metric in ``extra``
    (NaN dropped: a level never reached, and not JSON).
    """
    m = result.metrics
    return {
        "benchmark": benchmark,
        "apgr": float(m.apgr_trapezoid),
        "cpt": {f"{round(level * 100)}%": float(v) for level, v in m.cpt.items() if v == v},
        "command": command,
        "notes": notes,
        "extra": {k: v for k, v in m.to_dict().items() if isinstance(v, (int, float)) and v == v},
    }


def evaluate_benchmarks(
    router: Any,
    benchmarks: Sequence[str],
    *,
    entry_name: str,
    data_dir: str | os.PathLike[str] | None = None,
    prepare: Callable[[list[str]], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`card_record` s of ``router`` (anything with ``win_rate(prompts)``, e.g. a
    :class:`routellm_jax.api.Router`) on each ``routellm-jax eval`` benchmark (``mmlu``,
    ``gsm8k``, ``mmlu-10pct``), MMLU always without the golden split, so a router trained on it
    is never scored on it. ``prepare(prompts)`` runs before each benchmark is scored (the zoo
    exporter fills its on-disk embedding store there); ``command`` is the CLI call that
    reproduces each number once the entry is in the zoo.
    """
    records = []
    for spec in benchmarks:
        exclude_golden = spec == "mmlu"
        bench = load_benchmark(spec, data_dir=data_dir, exclude_golden=exclude_golden)
        prompts = list(bench.prompts)
        if prepare is not None:
            prepare(prompts)
        rates = np.asarray(router.win_rate(prompts), np.float64)
        result = evaluate_win_rates(bench, rates, name=entry_name)
        command = f"routellm-jax eval --benchmark {spec} --router {entry_name}"
        if exclude_golden:
            command += " --exclude-golden"
        notes = (
            f"{len(bench)} prompts, strong {bench.strong_model} vs weak {bench.weak_model}; "
            "apgr = trapezoid APGR; cpt = strong-call share first reaching each PGR level; "
            "computed at export by the same code as the command"
            + ("; MMLU golden split excluded" if exclude_golden else "")
        )
        records.append(card_record(result, benchmark=spec, command=command, notes=notes))
    return records
