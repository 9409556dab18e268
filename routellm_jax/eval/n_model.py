"""N-model cost-quality curves: quality bought against money spent, for routers and baselines.

A benchmark here is a table of ``n`` prompts by ``m`` models with each model's correctness and the
actual cost of its call (:class:`NModelBenchmark`; :func:`routerbench_n_model` reads RouterBench's
11 models, with the per-call costs RouterBench measured). A router routes on its *estimated*
quality and a *price list* known in advance (each model's mean cost per call on the training
split); the curve reports what the chosen calls really cost and how often they were right.

Curves (each a set of operating points ``(mean spend per prompt, mean quality)``):

* a router under the trade-off policy, swept over lambda (:func:`policy_curve`), and under
  "cheapest adequate" (the cheapest model whose estimated quality reaches a floor, swept over the
  floor: :func:`floor_curve`);
* every single model (one point each); the best single model (highest quality) and the cheapest;
* random mixing: sending a random share of prompts to one model and the rest to another traces the
  segment between their points, so its curve is the upper convex hull of the single models;
* the oracle: the trade-off policy on the *true* correctness and costs.

Scalars, after RouterBench: ``aiq`` (average quality over the spend range from the cheapest to the
dearest single model, of the curve's upper convex hull: mixing with randomness is always allowed,
and the cheapest model is always available), and ``spend_to_best`` (the least spend at which the
hull reaches the best single model's quality; NaN if it never does).

Example:
    >>> b = NModelBenchmark("toy", np.array(["a", "b"], dtype=object), ("x", "y"),
    ...                     np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 1.0], [2.0, 1.0]]))
    >>> oracle = oracle_curve(b)
    >>> round(spend_to_reach(oracle, 1.0), 2)
    1.5
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from routellm_jax.data.decontaminate import DEFAULT_THRESHOLD, max_cosine, normalize_text
from routellm_jax.data.model_names import default_table
from routellm_jax.data.sources.correctness import _parse_prompt_list, routerbench_model_columns
from routellm_jax.eval.policy import Policy, choose
from routellm_jax.paths import data_dir as find_data_dir

ROUTERBENCH_DIR = Path("shuhao02__RouterDC/datasets/routerbench_zs")
ROUTERBENCH_TASKS = ("arc_challenge", "mbpp", "winograde")
# Trade-off weights swept for a curve: 0 (quality only) up to weights that buy the cheapest model.
LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 61)])
FLOORS = np.linspace(0.0, 1.0, 41)
AIQ_GRID = 201


@dataclasses.dataclass(frozen=True)
class NModelBenchmark:
    """``prompts`` [n], ``models`` (m names), ``correct`` [n, m] in [0, 1], ``cost`` [n, m] (the
    actual cost of each call), ``task`` [n] (the sub-benchmark of each prompt)."""

    name: str
    prompts: np.ndarray
    models: tuple[str, ...]
    correct: np.ndarray
    cost: np.ndarray
    task: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        if self.correct.shape != (n, m) or self.cost.shape != (n, m):
            raise ValueError(
                f"{self.name}: correct {self.correct.shape} and cost {self.cost.shape} must be "
                f"[{n}, {m}]"
            )

    def select(self, models: Sequence[str]) -> NModelBenchmark:
        """The same prompts with only ``models`` (in that order)."""
        index = [self.models.index(m) for m in models]
        return dataclasses.replace(
            self, models=tuple(models), correct=self.correct[:, index], cost=self.cost[:, index]
        )

    def prices(self) -> np.ndarray:
        """``[m]`` mean cost per call of each model (a price list, when taken on training data)."""
        return self.cost.mean(axis=0)

    def rows(self, keep: np.ndarray, name: str) -> NModelBenchmark:
        """Only the prompts where ``keep`` [n] bool is True, renamed ``name``."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.prompts),):
            raise ValueError(f"{self.name}: keep must be [{len(self.prompts)}] bool")
        return dataclasses.replace(
            self,
            name=name,
            prompts=self.prompts[keep],
            correct=self.correct[keep],
            cost=self.cost[keep],
            task=None if self.task is None else self.task[keep],
        )


def unseen_prompts(
    prompts: Sequence[str],
    seen: Sequence[str],
    prompt_embeddings: np.ndarray,
    seen_embeddings: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """``[n]`` bool: the prompts with neither an exact (:func:`normalize_text`) nor a near
    duplicate (cosine of the embeddings ``>= threshold``) among ``seen`` (a router's training
    prompts), as the training pipeline's decontamination judges them.

    Example:
        >>> e = np.eye(3, dtype=np.float32)
        >>> unseen_prompts(["a", "B!", "c"], ["b", "z"], e, e[[2, 2]]).tolist()
        [True, False, False]
    """
    exact = {normalize_text(p) for p in seen}
    keep = np.array([normalize_text(p) not in exact for p in prompts], dtype=bool)
    if len(seen):
        best, _ = max_cosine(_unit(prompt_embeddings), _unit(seen_embeddings))
        keep &= best < threshold
    return keep


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def routerbench_n_model(
    data_dir: str | os.PathLike[str] | None = None, split: str = "test"
) -> NModelBenchmark:
    """RouterBench zero-shot (ARC-Challenge, MBPP, Winogrande) ``split``: 0/1 correctness and the
    measured cost of each of its 11 models on each prompt, model names canonical
    (:mod:`routellm_jax.data.model_names`). Rows missing a value for any model are dropped.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = find_data_dir(data_dir) / ROUTERBENCH_DIR
    table = default_table()
    frames = []
    for task in ROUTERBENCH_TASKS:
        path = root / f"{task}_{split}.csv"
        df = pd.read_csv(path)
        columns = routerbench_model_columns(list(df.columns))
        missing = [c for c in columns if f"{c}|total_cost" not in df.columns]
        if missing:
            raise ValueError(f"{path}: no '|total_cost' column for {missing}")
        frame = pd.DataFrame(
            {
                "prompt": [_parse_prompt_list(p) for p in df["prompt"]],
                "task": task,
                **{f"correct:{c}": pd.to_numeric(df[c], errors="coerce") for c in columns},
                **{
                    f"cost:{c}": pd.to_numeric(df[f"{c}|total_cost"], errors="coerce")
                    for c in columns
                },
            }
        )
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True).dropna()
    raw = [c.split(":", 1)[1] for c in data.columns if c.startswith("correct:")]
    return NModelBenchmark(
        name=f"routerbench_{split}",
        prompts=data["prompt"].to_numpy(dtype=object),
        models=tuple(table.canonical(c) for c in raw),
        correct=data[[f"correct:{c}" for c in raw]].to_numpy(np.float64),
        cost=data[[f"cost:{c}" for c in raw]].to_numpy(np.float64),
        task=data["task"].to_numpy(dtype=object),
    )


@dataclasses.dataclass(frozen=True)
class CostQualityCurve:
    """Operating points of one router or baseline: ``spend`` and ``quality`` (means per prompt),
    and what was swept to get them (``settings``)."""

    name: str
    spend: np.ndarray
    quality: np.ndarray
    settings: np.ndarray

    def hull(self, floor_point: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The upper convex hull of the points (and ``floor_point``, the cheapest model), as
        ``(spend, quality)`` with spend increasing and quality non-decreasing: what mixing the
        operating points at random can reach."""
        pts = list(zip(self.spend.tolist(), self.quality.tolist()))
        if floor_point is not None:
            pts.append(floor_point)
        return upper_hull(np.array(pts))


def upper_hull(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-left convex hull of ``points`` [k, 2] (spend, quality): from the cheapest point to the
    highest-quality one, quality non-decreasing.

    Example:
        >>> upper_hull(np.array([[0.0, 0.0], [1.0, 0.9], [2.0, 1.0], [1.5, 0.5]]))[1].tolist()
        [0.0, 0.9, 1.0]
    """
    pts = sorted({(float(x), float(y)) for x, y in points})
    # Andrew's monotone chain, upper part; then cut at the highest quality.
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0]))
    hull = hull[: best + 1]
    xs, ys = np.array([h[0] for h in hull]), np.array([h[1] for h in hull])
    return xs, np.maximum.accumulate(ys)


def _points(
    bench: NModelBenchmark, picks: Sequence[np.ndarray], settings: np.ndarray, name: str
) -> CostQualityCurve:
    rows = np.arange(len(bench.prompts))
    spend = np.array([bench.cost[rows, p].mean() for p in picks])
    quality = np.array([bench.correct[rows, p].mean() for p in picks])
    return CostQualityCurve(name, spend, quality, np.asarray(settings, np.float64))


def policy_curve(
    bench: NModelBenchmark,
    estimate: np.ndarray,
    prices: np.ndarray,
    name: str,
    lambdas: np.ndarray = LAMBDAS,
) -> CostQualityCurve:
    """The trade-off policy on a router's ``estimate`` [n, m] with ``prices`` [m], one point per
    lambda, scored with the benchmark's true correctness and costs."""
    cost = np.broadcast_to(np.asarray(prices, np.float64), estimate.shape)
    picks = [choose(estimate, cost, Policy("tradeoff", float(x))).model_index for x in lambdas]
    return _points(bench, picks, lambdas, name)


def floor_curve(
    bench: NModelBenchmark,
    estimate: np.ndarray,
    prices: np.ndarray,
    name: str,
    floors: np.ndarray = FLOORS,
) -> CostQualityCurve:
    """Cheapest adequate: the cheapest model whose estimated quality reaches the floor (else the
    most likely), one point per floor."""
    cost = np.broadcast_to(np.asarray(prices, np.float64), estimate.shape)
    picks = [choose(estimate, cost, Policy("quality_floor", float(x))).model_index for x in floors]
    return _points(bench, picks, floors, name)


def single_model_curve(bench: NModelBenchmark) -> CostQualityCurve:
    """One point per model (``settings``: the model's column)."""
    n, m = bench.correct.shape
    picks = [np.full(n, j) for j in range(m)]
    return _points(bench, picks, np.arange(m), "single models")


def oracle_curve(bench: NModelBenchmark, lambdas: np.ndarray = LAMBDAS) -> CostQualityCurve:
    """The trade-off policy on the true correctness and costs (what perfect knowledge buys)."""
    picks = [
        choose(bench.correct, bench.cost, Policy("tradeoff", float(x))).model_index for x in lambdas
    ]
    return _points(bench, picks, lambdas, "oracle")


def spend_to_reach(curve: CostQualityCurve, level: float, floor_point=None) -> float:
    """The least spend at which the curve's hull reaches ``level`` (linear between hull points);
    NaN if it never does."""
    xs, ys = curve.hull(floor_point)
    if ys[-1] < level - 1e-12:
        return math.nan
    if ys[0] >= level:
        return float(xs[0])
    k = int(np.argmax(ys >= level - 1e-12))
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    return float(x0 + (x1 - x0) * (level - y0) / (y1 - y0))


def aiq(curve: CostQualityCurve, low: float, high: float, floor_point=None) -> float:
    """Average quality of the curve's hull over spends in ``[low, high]`` (flat past its ends)."""
    xs, ys = curve.hull(floor_point)
    grid = np.linspace(low, high, AIQ_GRID)
    return float(np.interp(grid, xs, ys).mean())


@dataclasses.dataclass(frozen=True)
class NModelResult:
    """A curve and its scalars."""

    curve: CostQualityCurve
    aiq: float
    spend_to_best: float
    max_quality: float


def score_curves(
    bench: NModelBenchmark, curves: Sequence[CostQualityCurve]
) -> tuple[dict[str, float], list[NModelResult]]:
    """The reference numbers (best single model's quality and spend, cheapest model's) and each
    curve's :class:`NModelResult` (AIQ over the single models' spend range, spend to reach the
    best single model's quality)."""
    singles = single_model_curve(bench)
    best = int(np.argmax(singles.quality))
    cheapest = int(np.argmin(singles.spend))
    low, high = float(singles.spend.min()), float(singles.spend.max())
    floor = (float(singles.spend[cheapest]), float(singles.quality[cheapest]))
    reference = {
        "best_model": bench.models[best],
        "best_quality": float(singles.quality[best]),
        "best_spend": float(singles.spend[best]),
        "cheapest_model": bench.models[cheapest],
        "cheapest_quality": float(singles.quality[cheapest]),
        "cheapest_spend": float(singles.spend[cheapest]),
        "spend_low": low,
        "spend_high": high,
    }
    results = [
        NModelResult(
            c,
            aiq(c, low, high, floor),
            spend_to_reach(c, reference["best_quality"], floor),
            float(c.quality.max()),
        )
        for c in curves
    ]
    return reference, results


def random_mixing_curve(bench: NModelBenchmark) -> CostQualityCurve:
    """The single models' upper convex hull, as a curve (random mixing of two models traces the
    segment between them)."""
    xs, ys = single_model_curve(bench).hull()
    return CostQualityCurve("random mixing", xs, ys, np.arange(len(xs), dtype=np.float64))
