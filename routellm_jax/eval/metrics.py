"""Routing metrics, as defined in the RouteLLM paper (arXiv 2406.18665) and its reference code
(``lm-sys/RouteLLM``, ``routellm/evals/benchmarks.py`` + ``evaluate.py``).

Everything here is a pure numpy function of arrays: a router's win rates ``P(strong wins | prompt)``
and the per-prompt scores of the strong and the weak model (0/1 correctness or a 1-10 grade).

Definitions (``s`` = strong model's mean score, ``w`` = weak model's mean score):

* **cost-quality curve** (:func:`threshold_curve`): thresholds at the quantiles of the router's own
  win rates, ``np.quantile(win_rates, linspace(0, 1, num_thresholds + 1))`` (what the reference's
  ``pd.qcut(win_rates, num_results, retbins=True)`` returns, linear interpolation). At each threshold
  a prompt goes to the strong model when ``win_rate >= threshold``, except at the last (largest)
  threshold where the reference uses ``win_rate > threshold`` so that the curve reaches 0% strong
  calls. Each threshold gives one point ``(strong-call share c, mean quality r)``; points are sorted by
  ``c``. The reference's default ``--num-results 10`` gives 11 points.
* **Ties in win rates**: ``pd.qcut`` raises on duplicate quantile edges, so the reference cannot score
  a router whose win rates have heavy ties. We keep duplicate thresholds instead: a duplicate threshold
  repeats a point, which adds a zero-width trapezoid, i.e. exactly the same result as dropping the
  duplicate edge (``duplicates="drop"``). Tied prompts are always routed together (``>=``), so a
  router that gives every prompt the same win rate has the points (0, w) and (1, s), the random
  router's expected line, APGR 0.5.
* **PGR** (:func:`pgr`): ``(r - w) / (s - w)``. ``cap=True`` clips each point's PGR at 1 (the paper
  notes that the oracle exceeds 1; both are reported).
* **AUC** (:func:`auc`): ``np.trapezoid(quality, strong_share)`` (the reference uses quality in
  percent for correctness benchmarks; here quality keeps the benchmark's units: a fraction in
  [0, 1] for correctness, the grade for MT-Bench).
* **APGR, trapezoid** (:func:`apgr_trapezoid`): the reference's ``(AUC - AUC_weak) /
  (AUC_strong - AUC_weak)`` = ``trapezoid(PGR, c) / (c_max - c_min)``. This is what the paper's
  tables report (random = 0.500).
* **APGR, 10-point** (:func:`apgr_10pt`): the paper's discretised formula
  ``1/10 * sum_{i=1..10} PGR(c_i)`` with ``c_i = i / 10``, the router's PGR read off its curve by
  linear interpolation. On the same grid it equals the trapezoid plus ``(PGR(1) - PGR(0)) / 20``
  (= +0.05 for any router whose curve ends at the strong and weak models), which is why the paper's
  tables, where random scores 0.500, must be the trapezoid; both are reported, by name.
* **CPT(x)** (:func:`cpt`): the smallest strong-call share at which the curve (piecewise linear in c)
  reaches ``PGR = x``; ``nan`` if it never does. The reference reads it with
  ``np.interp(target_quality, quality, share)``, which is the same number whenever the curve's
  quality increases with c (the usual case), and not meaningful otherwise;
  :func:`cpt_reference_interp` reproduces that call exactly for comparison.
* **Random router** (:func:`random_expected_curve`): routing a random share c of prompts gives
  expected quality ``w + c (s - w)``: PGR(c) = c, APGR 0.5, CPT(x) = x.
  :func:`random_win_rates` + :func:`threshold_curve` give sampled curves (average them over seeds).
* **Oracle** (:func:`oracle_curve`): the reference's ``get_optimal_accuracy``: with a budget of
  ``c * n`` strong calls, send to the strong model the prompts where it beats the weak model, largest
  gain first; ties (equal scores) stay on the weak model and use no budget. The budget is a maximum,
  so beyond the number of strong-better prompts the quality stays flat at ``w + gains / n``, above
  ``s`` (PGR > 1): the oracle also keeps the prompts only the weak model gets right. Recomputed from the
  evaluation files: APGR (trapezoid, 11 points) MMLU 1.2896 (0.9300 capped), GSM8K 1.1309 (0.8861).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Default grid: the reference's ``--num-results 10`` (10 quantile bins -> 11 thresholds/points).
DEFAULT_NUM_THRESHOLDS = 10
CPT_LEVELS = (0.2, 0.5, 0.8)


@dataclass(frozen=True)
class Curve:
    """A cost-quality curve: points sorted by strong-call share.

    Example:
        >>> c = Curve(np.array([0.0, 1.0]), np.array([0.5, 0.8]))
        >>> float(auc(c))
        0.65
    """

    strong_share: np.ndarray  # [k] float64 in [0, 1], ascending
    quality: np.ndarray  # [k] float64, mean score of the routed answers
    thresholds: np.ndarray | None = (
        None  # [k] win-rate threshold of each point (None: not a router)
    )
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.strong_share) != len(self.quality):
            raise ValueError(
                f"curve {self.label!r}: {len(self.strong_share)} shares but "
                f"{len(self.quality)} quality values"
            )
        if len(self.strong_share) < 2:
            raise ValueError(f"curve {self.label!r}: needs at least 2 points")
        if np.any(np.diff(self.strong_share) < 0):
            raise ValueError(f"curve {self.label!r}: strong_share must be sorted ascending")

    def to_dict(self) -> dict:
        """JSON-ready dict. Example: ``json.dumps(curve.to_dict())``."""
        return {
            "label": self.label,
            "strong_share": [float(x) for x in self.strong_share],
            "quality": [float(x) for x in self.quality],
            "thresholds": None if self.thresholds is None else [float(x) for x in self.thresholds],
        }


def _as_1d(x: np.ndarray | list, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{name} has NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    return arr


def _check_pair(
    win_rates: np.ndarray | None, strong: np.ndarray, weak: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    strong = _as_1d(strong, "strong_scores")
    weak = _as_1d(weak, "weak_scores")
    if strong.shape != weak.shape:
        raise ValueError(f"strong_scores {strong.shape} and weak_scores {weak.shape} differ")
    if win_rates is not None:
        win_rates = _as_1d(win_rates, "win_rates")
        if win_rates.shape != strong.shape:
            raise ValueError(
                f"win_rates has {win_rates.shape[0]} values for {strong.shape[0]} prompts"
            )
    return strong, weak, win_rates


def quantile_thresholds(
    win_rates: np.ndarray, num_thresholds: int = DEFAULT_NUM_THRESHOLDS
) -> np.ndarray:
    """Thresholds at the ``num_thresholds + 1`` quantiles 0, 1/k, ..., 1 of the win rates
    (``pd.qcut(win_rates, k, retbins=True)[1]`` without its duplicate-edge error).

    Example:
        >>> quantile_thresholds(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), 4).tolist()
        [0.1, 0.2, 0.3, 0.4, 0.5]
    """
    if num_thresholds < 1:
        raise ValueError(f"num_thresholds must be >= 1, got {num_thresholds}")
    win_rates = _as_1d(win_rates, "win_rates")
    return np.quantile(win_rates, np.linspace(0.0, 1.0, num_thresholds + 1))


def route_strong(win_rates: np.ndarray, threshold: float, *, strict: bool = False) -> np.ndarray:
    """Boolean mask of the prompts sent to the strong model: ``win_rate >= threshold``
    (``>`` when ``strict``, the reference's rule at its largest threshold).

    Example:
        >>> route_strong(np.array([0.2, 0.5, 0.7]), 0.5).tolist()
        [False, True, True]
    """
    win_rates = np.asarray(win_rates, dtype=np.float64)
    return win_rates > threshold if strict else win_rates >= threshold


def threshold_curve(
    win_rates: np.ndarray,
    strong_scores: np.ndarray,
    weak_scores: np.ndarray,
    num_thresholds: int = DEFAULT_NUM_THRESHOLDS,
    label: str = "",
) -> Curve:
    """The router's cost-quality curve at quantile thresholds of its win rates (module docstring).

    Example:
        >>> c = threshold_curve(np.array([0.9, 0.1]), np.array([1.0, 1.0]), np.array([0.0, 1.0]), 1)
        >>> c.strong_share.tolist(), c.quality.tolist()
        ([0.0, 1.0], [0.5, 1.0])
    """
    strong, weak, win_rates = _check_pair(win_rates, strong_scores, weak_scores)
    thresholds = quantile_thresholds(win_rates, num_thresholds)
    n = len(strong)
    shares, qualities = [], []
    for i, t in enumerate(thresholds):
        mask = route_strong(win_rates, t, strict=i == len(thresholds) - 1)
        shares.append(mask.sum() / n)
        qualities.append(np.where(mask, strong, weak).mean())
    shares_arr = np.asarray(shares)
    # Stable sort by share; selections are nested (higher threshold -> subset), so equal shares
    # mean equal selections and equal quality: the order among them does not matter.
    order = np.argsort(shares_arr, kind="stable")
    return Curve(shares_arr[order], np.asarray(qualities)[order], thresholds[order], label)


def pgr(
    quality: float | np.ndarray, strong_quality: float, weak_quality: float, *, cap: bool = False
) -> float | np.ndarray:
    """Performance gap recovered ``(r - w) / (s - w)``; ``cap=True`` clips at 1.

    Example:
        >>> float(pgr(0.75, strong_quality=0.8, weak_quality=0.7))
        0.5
    """
    gap = strong_quality - weak_quality
    if gap == 0 or not math.isfinite(gap):
        raise ValueError(
            f"PGR undefined: strong quality {strong_quality} and weak quality {weak_quality} "
            "have no finite gap"
        )
    out = (np.asarray(quality, dtype=np.float64) - weak_quality) / gap
    if cap:
        out = np.minimum(out, 1.0)
    return float(out) if out.ndim == 0 else out


def auc(curve: Curve) -> float:
    """Area under the quality curve over strong-call share (trapezoid), in quality units.

    Example:
        >>> auc(Curve(np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 1.0])))
        0.75
    """
    return float(np.trapezoid(curve.quality, curve.strong_share))


def apgr_trapezoid(
    curve: Curve, strong_quality: float, weak_quality: float, *, cap: bool = False
) -> float:
    """APGR as the reference code computes it: ``(AUC - AUC_weak) / (AUC_strong - AUC_weak)``,
    i.e. the trapezoid of PGR over the curve's shares divided by their range.

    Example:
        >>> c = random_expected_curve(0.8, 0.6)
        >>> round(apgr_trapezoid(c, 0.8, 0.6), 6)
        0.5
    """
    span = float(curve.strong_share[-1] - curve.strong_share[0])
    if span <= 0:
        raise ValueError(f"curve {curve.label!r}: all points have the same strong-call share")
    p = pgr(curve.quality, strong_quality, weak_quality, cap=cap)
    return float(np.trapezoid(p, curve.strong_share)) / span


def pgr_at(
    curve: Curve, shares: np.ndarray, strong_quality: float, weak_quality: float, *, cap=False
) -> np.ndarray:
    """PGR read off the curve at given strong-call shares (linear interpolation).

    Example:
        >>> pgr_at(random_expected_curve(1.0, 0.0), np.array([0.25]), 1.0, 0.0).tolist()
        [0.25]
    """
    quality = _interp_on_curve(curve, np.asarray(shares, dtype=np.float64))
    return np.asarray(pgr(quality, strong_quality, weak_quality, cap=cap), dtype=np.float64)


def _interp_on_curve(curve: Curve, shares: np.ndarray) -> np.ndarray:
    # Points with equal share have equal quality (nested selections), so np.interp's handling of
    # repeated xp is harmless here.
    return np.interp(shares, curve.strong_share, curve.quality)


def apgr_10pt(
    curve: Curve,
    strong_quality: float,
    weak_quality: float,
    *,
    num_points: int = 10,
    cap: bool = False,
) -> float:
    """The paper's discretised APGR: ``1/N * sum_{i=1..N} PGR(c_i)``, ``c_i = i / N`` (N = 10).

    Example:
        >>> round(apgr_10pt(random_expected_curve(0.8, 0.6), 0.8, 0.6), 6)
        0.55
    """
    shares = np.arange(1, num_points + 1) / num_points
    return float(np.mean(pgr_at(curve, shares, strong_quality, weak_quality, cap=cap)))


def cpt(curve: Curve, strong_quality: float, weak_quality: float, level: float) -> float:
    """Call-performance threshold: smallest strong-call share where the curve reaches
    ``PGR = level`` (e.g. 0.5 for CPT(50%)); ``nan`` when it never does.

    Example:
        >>> cpt(random_expected_curve(0.8, 0.6), 0.8, 0.6, 0.5)
        0.5
    """
    p = np.asarray(pgr(curve.quality, strong_quality, weak_quality), dtype=np.float64)
    c = curve.strong_share
    # Small tolerance so that a point computed as 0.49999999999 counts as reaching 0.5.
    eps = 1e-12
    if p[0] >= level - eps:
        return float(c[0])
    for i in range(len(p) - 1):
        if p[i] < level - eps and p[i + 1] >= level - eps:
            if p[i + 1] == p[i]:
                return float(c[i + 1])
            frac = (level - p[i]) / (p[i + 1] - p[i])
            return float(c[i] + min(max(frac, 0.0), 1.0) * (c[i + 1] - c[i]))
    return float("nan")


def cpt_reference_interp(
    curve: Curve, strong_quality: float, weak_quality: float, level: float
) -> float:
    """The reference's CPT: ``np.interp(w + level (s - w), quality, share)`` on the curve sorted by
    share (meaningful only when quality increases with share).

    Example:
        >>> cpt_reference_interp(random_expected_curve(0.8, 0.6), 0.8, 0.6, 0.2)
        0.2
    """
    target = weak_quality + level * (strong_quality - weak_quality)
    return float(np.interp(target, curve.quality, curve.strong_share))


def random_expected_curve(
    strong_quality: float,
    weak_quality: float,
    num_thresholds: int = DEFAULT_NUM_THRESHOLDS,
    label: str = "random (expected)",
) -> Curve:
    """The random router's expected curve: ``quality(c) = w + c (s - w)`` at ``c = i / k``.

    Example:
        >>> random_expected_curve(1.0, 0.0, 2).quality.tolist()
        [0.0, 0.5, 1.0]
    """
    shares = np.linspace(0.0, 1.0, num_thresholds + 1)
    return Curve(shares, weak_quality + shares * (strong_quality - weak_quality), None, label)


def random_win_rates(n: int, seed: int) -> np.ndarray:
    """``n`` i.i.d. uniform win rates from ``np.random.default_rng(seed)`` (the random router).

    Example:
        >>> random_win_rates(3, 0).shape
        (3,)
    """
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=n)


def oracle_curve(
    strong_scores: np.ndarray,
    weak_scores: np.ndarray,
    num_thresholds: int = DEFAULT_NUM_THRESHOLDS,
    *,
    budget_rounding: str = "interpolate",
    label: str = "oracle",
) -> Curve:
    """The oracle's curve at strong-call budgets ``c = i / k`` (module docstring).

    ``budget_rounding="interpolate"`` allows a fractional number of calls ``c * n`` (the gain
    of the next prompt counts pro rata): for 0/1 scores this is exactly the reference's MMLU/GSM8K
    ``weak + min(c n, #strong-only-correct)``. ``"floor"`` uses ``int(c * n)`` calls, the
    reference's MT-Bench code.

    Example:
        >>> oracle_curve(np.array([1, 1, 0, 1]), np.array([0, 1, 1, 1]), 2).quality.tolist()
        [0.75, 1.0, 1.0]
    """
    strong, weak, _ = _check_pair(None, strong_scores, weak_scores)
    n = len(strong)
    gains = strong - weak
    positive = np.sort(gains[gains > 0])[::-1]  # [m] largest gain first
    cum = np.concatenate([[0.0], np.cumsum(positive)])  # [m + 1] gain of the first j calls
    shares = np.linspace(0.0, 1.0, num_thresholds + 1)
    budget = shares * n
    if budget_rounding == "interpolate":
        total_gain = np.interp(np.minimum(budget, len(positive)), np.arange(len(cum)), cum)
    elif budget_rounding == "floor":
        calls = np.minimum(np.floor(budget + 1e-9).astype(np.int64), len(positive))
        total_gain = cum[calls]
    else:
        raise ValueError(
            f"budget_rounding must be 'interpolate' or 'floor', got {budget_rounding!r}"
        )
    return Curve(shares, weak.mean() + total_gain / n, None, label)


@dataclass(frozen=True)
class RouterMetrics:
    """Every metric of one curve. Shares and CPTs are fractions in [0, 1].

    Example:
        >>> m = compute_metrics(random_expected_curve(0.8, 0.6), 0.8, 0.6)
        >>> round(m.apgr_trapezoid, 3), m.cpt[0.5]
        (0.5, 0.5)
    """

    apgr_trapezoid: float
    apgr_trapezoid_capped: float
    apgr_10pt: float
    apgr_10pt_capped: float
    auc: float
    cpt: dict[float, float]  # level -> share (first crossing)
    cpt_reference_interp: dict[float, float]  # level -> np.interp reading (reference code)
    strong_quality: float
    weak_quality: float
    max_pgr: float
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict (CPT keys as ``"cpt_50"``...). Example: ``m.to_dict()["apgr_10pt"]``."""
        out = {
            "apgr_trapezoid": self.apgr_trapezoid,
            "apgr_trapezoid_capped": self.apgr_trapezoid_capped,
            "apgr_10pt": self.apgr_10pt,
            "apgr_10pt_capped": self.apgr_10pt_capped,
            "auc": self.auc,
            "strong_quality": self.strong_quality,
            "weak_quality": self.weak_quality,
            "max_pgr": self.max_pgr,
        }
        for level, value in self.cpt.items():
            out[f"cpt_{round(level * 100)}"] = None if math.isnan(value) else value
        for level, value in self.cpt_reference_interp.items():
            out[f"cpt_{round(level * 100)}_reference_interp"] = value
        out.update(self.extra)
        return out


def compute_metrics(
    curve: Curve,
    strong_quality: float,
    weak_quality: float,
    levels: tuple[float, ...] = CPT_LEVELS,
) -> RouterMetrics:
    """All metrics of a curve against the strong/weak qualities.

    Example:
        >>> compute_metrics(random_expected_curve(1.0, 0.0), 1.0, 0.0).cpt[0.8]
        0.8
    """
    return RouterMetrics(
        apgr_trapezoid=apgr_trapezoid(curve, strong_quality, weak_quality),
        apgr_trapezoid_capped=apgr_trapezoid(curve, strong_quality, weak_quality, cap=True),
        apgr_10pt=apgr_10pt(curve, strong_quality, weak_quality),
        apgr_10pt_capped=apgr_10pt(curve, strong_quality, weak_quality, cap=True),
        auc=auc(curve),
        cpt={lv: cpt(curve, strong_quality, weak_quality, lv) for lv in levels},
        cpt_reference_interp={
            lv: cpt_reference_interp(curve, strong_quality, weak_quality, lv) for lv in levels
        },
        strong_quality=float(strong_quality),
        weak_quality=float(weak_quality),
        max_pgr=float(np.max(pgr(curve.quality, strong_quality, weak_quality))),
    )
