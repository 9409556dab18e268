"""Keeping a promised strong share on target while traffic drifts: an online threshold controller.

A threshold calibrated on a reference set (the card's calibration table) buys the promised share
of strong calls only on traffic like the reference; on tomorrow's traffic (more maths, fewer
chats) the same threshold buys a different share. :class:`ShareController` moves the threshold
from the live scores instead:

* **quantile tracking**: the threshold is the ``1 - aim`` quantile of a sliding window of the
  last ``window`` scores, so it sends ``aim`` of recent traffic to the strong model;
* **feedback on the realised share**: ``aim = target + gain * (target - realised)``, the realised
  share being that of the last ``window`` decisions, so a shift that overshot (decisions made
  before the window caught up) is paid back, and the share over time stays at the target;
* **bounded steps**: one update moves the threshold by at most ``max_step`` in share (the share
  of the window it would send strong changes by at most that), and a burst of ``b`` prompts
  changes at most ``b / window`` of the window's mass, so one burst cannot swing it;
* **start from the card**: the window starts filled with the calibration reference's score
  distribution (interpolated from the table), so the first threshold is the calibrated one and
  live scores replace the reference ones as they arrive.

:attr:`ShareController.psi` is a drift gauge: the population stability index of the live scores
in the window against the calibration reference, in the table's own bins (each holds a known
share of the reference). Common reading: below 0.1 no shift, 0.1-0.25 a moderate shift, above
0.25 (:data:`PSI_WARNING`) a shift worth a look; crossing it logs a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from routellm_jax.eval.policy import Policy, choose

logger = logging.getLogger("routellm_jax.serve")

PSI_WARNING = 0.25
# Live scores needed before the drift gauge reports: with 10 bins, n scores drawn from the
# reference itself give a PSI of about 9 / n from sampling noise alone.
PSI_MIN_SCORES = 50
# The gauge's bins: deciles of the reference (the usual PSI binning).
PSI_BINS = 10


@dataclasses.dataclass(frozen=True)
class ReferenceTable:
    """A calibration reference: strong ``shares`` (ascending) and the ``thresholds`` sending them
    (descending), extended by the scores sending none (``top``) and all (``bottom``).

    Example:
        >>> t = ReferenceTable((0.25, 0.5, 0.75), (0.75, 0.5, 0.25), 1.0, 0.0)
        >>> t.threshold(0.5), t.scores(4).tolist()
        (0.5, [0.875, 0.625, 0.375, 0.125])
    """

    shares: tuple[float, ...]
    thresholds: tuple[float, ...]
    top: float
    bottom: float

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.thresholds) or not self.shares:
            raise ValueError("a reference table needs as many thresholds as shares (at least one)")
        if np.any(np.diff(self.shares) <= 0) or np.any(np.diff(self.thresholds) > 0):
            raise ValueError("reference shares must increase and thresholds must not increase")

    def threshold(self, share: float) -> float:
        """The reference threshold for ``share`` (linear between the table's rows)."""
        xs = np.array([0.0, *self.shares, 1.0])
        ys = np.array([self.top, *self.thresholds, self.bottom])
        return float(np.interp(share, xs, ys))

    def scores(self, n: int) -> np.ndarray:
        """``n`` scores distributed as the reference (its inverse CDF at ranks ``(i + 0.5) / n``)."""
        ranks = (np.arange(n) + 0.5) / n
        return np.array([self.threshold(r) for r in ranks])

    def bins(self, n_bins: int = PSI_BINS) -> tuple[np.ndarray, np.ndarray]:
        """``(edges ascending, expected share per bin)`` for the drift gauge: ``n_bins``
        quantile bins of the reference, bin ``i`` holding scores in ``[edges[i-1], edges[i])``
        (the first and last bins are open), each expected to hold ``1 / n_bins``."""
        upper = np.arange(n_bins - 1, 0, -1) / n_bins  # strong shares, lowest scores first
        edges = np.array([self.threshold(u) for u in upper])
        return edges, np.full(n_bins, 1.0 / n_bins)


# Shares at which a reference table is read off a router (the card's calibration grid).
REFERENCE_SHARES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def reference_table(threshold_for_share: Callable[[float], float]) -> ReferenceTable:
    """The reference table a router's ``threshold_for_share`` implies (read at
    :data:`REFERENCE_SHARES`, and at shares 0 and 1 for the extremes).

    Example:
        >>> t = reference_table(lambda share: 1.0 - share)
        >>> t.threshold(0.3), t.top, t.bottom
        (0.7, 1.0, 0.0)
    """
    thresholds = tuple(float(threshold_for_share(s)) for s in REFERENCE_SHARES)
    return ReferenceTable(
        REFERENCE_SHARES,
        thresholds,
        float(threshold_for_share(0.0)),
        float(threshold_for_share(1.0)),
    )


def population_stability_index(scores: Sequence[float], table: ReferenceTable) -> float:
    """PSI of ``scores`` against the reference table's bins:
    ``sum (actual - expected) * ln(actual / expected)``; 0 for scores distributed as the
    reference, growing with the shift.

    Example:
        >>> t = ReferenceTable((0.25, 0.5, 0.75), (0.75, 0.5, 0.25), 1.0, 0.0)
        >>> round(population_stability_index(t.scores(400), t), 6)
        0.0
        >>> population_stability_index([0.9] * 100, t) > PSI_WARNING
        True
    """
    edges, expected = table.bins()
    x = np.asarray(scores, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(expected))
    # Half a count added to every bin keeps ln(actual / expected) finite for empty bins.
    actual = (counts + 0.5) / (x.size + 0.5 * len(counts))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclasses.dataclass(frozen=True)
class ControllerSettings:
    """``window``: scores (and decisions) the controller looks back on; ``gain``: how strongly a
    realised share off target moves the aim; ``max_step``: the most one update may change the
    share the threshold sends on the window; ``psi_warning``: the drift level that logs a warning.

    Example:
        >>> ControllerSettings().window
        100
    """

    window: int = 100
    gain: float = 1.0
    max_step: float = 0.05
    psi_warning: float = PSI_WARNING

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"share controller window must be >= 2, got {self.window}")
        if not (self.gain >= 0 and 0 < self.max_step <= 1 and self.psi_warning > 0):
            raise ValueError("share controller: gain >= 0, 0 < max_step <= 1, psi_warning > 0")


class ShareController:
    """Online threshold for a strong-share target (module docstring). Thread-safe.

    Example:
        >>> t = ReferenceTable((0.25, 0.5, 0.75), (0.75, 0.5, 0.25), 1.0, 0.0)
        >>> c = ShareController(0.3, t, ControllerSettings(window=50))
        >>> round(c.threshold, 2)
        0.7
        >>> c.decide(0.9), c.decide(0.1)
        (True, False)
    """

    def __init__(
        self, target: float, reference: ReferenceTable, settings: ControllerSettings | None = None
    ) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"target share must lie strictly between 0 and 1, got {target}")
        self.target = float(target)
        self.reference = reference
        self.settings = settings or ControllerSettings()
        w = self.settings.window
        self._scores = reference.scores(w)  # ring buffer, starts as the reference distribution
        self._live = np.zeros(w)  # the live scores alone, for the drift gauge
        self._strong = np.zeros(w, dtype=bool)
        self._next = 0
        self._seen = 0
        self._threshold = reference.threshold(self.target)
        self._warned = False
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        """The threshold the next decision uses."""
        return self._threshold

    @property
    def realised_share(self) -> float:
        """Share of strong decisions among the last ``window`` (the target before any)."""
        n = min(self._seen, self.settings.window)
        return float(self._strong[:n].mean()) if n else self.target

    @property
    def psi(self) -> float:
        """Drift gauge: PSI of the live scores in the window against the reference (NaN until
        :data:`PSI_MIN_SCORES` live scores)."""
        n = min(self._seen, self.settings.window)
        if n < PSI_MIN_SCORES:
            return math.nan
        return population_stability_index(self._live[:n], self.reference)

    def decide(self, score: float) -> bool:
        """Route one prompt (True = strong: ``score >= threshold``), then update the threshold."""
        with self._lock:
            strong = bool(score >= self._threshold)
            s = self.settings
            i = self._next
            self._scores[i] = score
            self._live[i] = score
            self._strong[i] = strong
            self._next = (i + 1) % s.window
            self._seen += 1
            aim = self.target + s.gain * (self.target - self.realised_share)
            aim = min(max(aim, 0.5 / s.window), 1.0 - 0.5 / s.window)
            now = float(np.mean(self._scores >= self._threshold))
            share = min(max(aim, now - s.max_step), now + s.max_step)
            self._threshold = float(np.quantile(self._scores, 1.0 - share))
            if self._seen % s.window == 0:  # the gauge is checked once per window
                self._check_drift()
            return strong

    def _check_drift(self) -> None:
        psi = self.psi
        high = psi > self.settings.psi_warning
        if high and not self._warned:
            logger.warning(
                f"share controller (target {self.target:g}): live scores drifted from the "
                f"calibration reference (PSI {psi:.3f} > {self.settings.psi_warning:g}); the "
                "threshold follows the live traffic, but recalibrating the router on it is due"
            )
        self._warned = high


# ---- N models: spend per 1,000 requests -------------------------------------------------------

# Reference prompts a spend controller's start is computed from (evenly spaced over a longer set):
# enough for a stable start, few enough to score in seconds on first use.
SPEND_REFERENCE_PROMPTS = 512


def spread(items: Sequence[str], n: int = SPEND_REFERENCE_PROMPTS) -> list[str]:
    """At most ``n`` of ``items``, evenly spaced (every part of a longer set is represented).

    Example:
        >>> spread(list("abcdefgh"), 4)
        ['a', 'c', 'e', 'g']
    """
    items = list(items)
    if len(items) <= n:
        return items
    return [items[int(i * len(items) / n)] for i in range(n)]


def spend_reference_rows(
    router: Any, prompts: Sequence[str], table: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(quality, cost)`` rows a :class:`SpendController` starts from: :func:`spread` of
    ``prompts``, scored by ``router.model_quality`` over the upstream table's models and priced by
    the table (``table.names``, ``table.costs``). The server and the in-process client both call
    this, so they start from the same rows."""
    picked = spread(prompts)
    quality = np.asarray(router.model_quality(picked, table.names), np.float64)
    return quality, table.costs(picked, None)


# Trade-off weights the spend controller searches (the policy's lambda, cost relative to the
# dearest candidate): beyond the top every candidate set routes to its cheapest model.
_LAMBDA_HI = 1e4
_BISECTIONS = 40


def tradeoff_choice(quality: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    """``[n]`` column of the trade-off policy on each row: ``argmax quality - lam * cost /
    max_cost`` (as :func:`routellm_jax.eval.policy.choose` with ``Policy("tradeoff", lam)``, ties
    to the cheaper column).

    Example:
        >>> q = np.array([[0.9, 0.6]]); c = np.array([[10.0, 1.0]])
        >>> tradeoff_choice(q, c, 0.0).tolist(), tradeoff_choice(q, c, 1.0).tolist()
        ([0], [1])
    """
    dearest = np.maximum(cost.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    value = quality - lam * cost / dearest
    best = value.max(axis=1, keepdims=True)
    # Among the columns within rounding of the best, the cheapest.
    tied = value >= best - 1e-12
    return np.argmin(np.where(tied, cost, np.inf), axis=1)


def tradeoff_spend(quality: np.ndarray, cost: np.ndarray, lam: float) -> float:
    """Mean cost per row the trade-off policy spends at ``lam`` (non-increasing in ``lam``)."""
    pick = tradeoff_choice(quality, cost, lam)
    return float(cost[np.arange(len(cost)), pick].mean())


def lambda_for_spend(quality: np.ndarray, cost: np.ndarray, spend: float) -> float:
    """The least trade-off weight whose mean spend on these rows is at most ``spend`` (0 when
    the best models fit; the top of the search when not even the cheapest do).

    Example:
        >>> q = np.array([[0.9, 0.6], [0.8, 0.7]]); c = np.array([[10.0, 1.0], [10.0, 1.0]])
        >>> lam = lambda_for_spend(q, c, 5.5)
        >>> round(tradeoff_spend(q, c, lam), 6)
        5.5
    """
    if tradeoff_spend(quality, cost, 0.0) <= spend:
        return 0.0
    if tradeoff_spend(quality, cost, _LAMBDA_HI) > spend:
        return _LAMBDA_HI
    lo, hi = 0.0, _LAMBDA_HI  # spend(lo) > target >= spend(hi)
    for _ in range(_BISECTIONS):
        mid = math.sqrt(max(lo, 1e-6) * hi)  # bisect in log space: lambdas span decades
        if tradeoff_spend(quality, cost, mid) <= spend:
            hi = mid
        else:
            lo = mid
    return hi


def quality_gap(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """``[n]`` what spending can buy on each request: the best candidate's expected quality less
    the cheapest candidate's. The spend controller's drift gauge compares its distribution on
    live traffic with the reference's (maths traffic on which the dear model is far better has
    larger gaps than chat on which every model does well).

    Example:
        >>> quality_gap(np.array([[0.9, 0.6, 0.5]]), np.array([[3.0, 2.0, 1.0]])).tolist()
        [0.4]
    """
    rows = np.arange(len(cost))
    return quality.max(axis=1) - quality[rows, np.argmin(cost, axis=1)]


def _gap_table(gaps: np.ndarray) -> ReferenceTable:
    """The reference distribution of quality gaps as a :class:`ReferenceTable` (PSI bins)."""
    shares = REFERENCE_SHARES
    thresholds = tuple(float(np.quantile(gaps, 1.0 - s)) for s in shares)
    # Constant stretches (many equal gaps) still need increasing shares, non-increasing values.
    return ReferenceTable(shares, thresholds, float(gaps.max()), float(gaps.min()))


class SpendController:
    """Online trade-off weight for a spend target per 1,000 requests among N models.

    The policy is the trade-off (``maximise quality - lambda * cost / dearest cost``, see
    :mod:`routellm_jax.eval.policy`); its spend falls as lambda rises. The controller keeps a
    sliding window of the last ``window`` requests' quality and cost rows and sets lambda to the
    least weight whose spend *on that window* meets the aim (lambda tracking, as the share
    controller tracks a quantile):

    * **feedback**: ``aim = target + gain * (target - realised)``, realised being the mean cost of
      the last ``window`` decisions, so spend an early burst overshot is paid back;
    * **bounded steps**: one update moves the window's spend by at most ``max_step`` of its range
      (all-cheapest to all-best), and a burst of ``b`` requests is ``b / window`` of the window;
    * **start from the reference**: the first lambda is the one meeting the target on the whole
      reference set (prompts like the card's calibration set, scored by the router and priced by
      the upstream table), and the window starts filled with reference rows.

    :attr:`psi` is the drift gauge: PSI of the live quality gaps (:func:`quality_gap`) in the
    window against the reference's. Thread-safe.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q = rng.uniform(size=(200, 3)); c = np.tile([10.0, 3.0, 1.0], (200, 1))
        >>> s = SpendController(4000.0, q, c, ControllerSettings(window=50))
        >>> round(tradeoff_spend(q, c, s.tradeoff) * 1000) <= 4000
        True
        >>> s.decide(q[0], c[0]) in (0, 1, 2)
        True
    """

    def __init__(
        self,
        target_per_1k: float,
        reference_quality: np.ndarray,
        reference_cost: np.ndarray,
        settings: ControllerSettings | None = None,
    ) -> None:
        q = np.asarray(reference_quality, np.float64)
        c = np.asarray(reference_cost, np.float64)
        if q.ndim != 2 or q.shape != c.shape or q.shape[0] < 1 or q.shape[1] < 2:
            raise ValueError(
                f"spend controller: reference quality {q.shape} and cost {c.shape} must both be "
                "[n_prompts >= 1, n_models >= 2]"
            )
        if not (math.isfinite(target_per_1k) and target_per_1k > 0):
            raise ValueError(f"spend target per 1,000 requests must be > 0, got {target_per_1k}")
        self.target_per_1k = float(target_per_1k)
        self.settings = settings or ControllerSettings()
        self._target = self.target_per_1k / 1000.0  # per request
        w = self.settings.window
        self.initial_tradeoff = lambda_for_spend(q, c, self._target)
        # The window starts as reference rows spread evenly over the set.
        pick = (np.arange(w) * len(q)) // w
        self._q = q[pick].copy()
        self._c = c[pick].copy()
        self._spent = np.zeros(w)
        self._live_gap = np.zeros(w)
        self._reference = _gap_table(quality_gap(q, c))
        self._next = 0
        self._seen = 0
        self._lambda = self.initial_tradeoff
        self._warned = False
        self._lock = threading.Lock()

    @property
    def tradeoff(self) -> float:
        """The trade-off weight (lambda) the next decision uses."""
        return self._lambda

    @property
    def realised_per_1k(self) -> float:
        """Mean spend of the last ``window`` decisions, per 1,000 requests (the target before
        any)."""
        n = min(self._seen, self.settings.window)
        return float(self._spent[:n].mean()) * 1000.0 if n else self.target_per_1k

    @property
    def psi(self) -> float:
        """Drift gauge: PSI of the live quality gaps in the window against the reference's
        (NaN until :data:`PSI_MIN_SCORES` live requests)."""
        n = min(self._seen, self.settings.window)
        if n < PSI_MIN_SCORES:
            return math.nan
        return population_stability_index(self._live_gap[:n], self._reference)

    def decide(self, quality_row: Sequence[float], cost_row: Sequence[float]) -> int:
        """Choose one request's model (a column) with the current lambda, then update it."""
        q = np.asarray(quality_row, np.float64)[None, :]
        c = np.asarray(cost_row, np.float64)[None, :]
        if q.shape != (1, self._q.shape[1]) or c.shape != q.shape:
            raise ValueError(
                f"spend controller: expected {self._q.shape[1]} quality and cost values per "
                f"request, got {q.shape[1]} and {c.shape[1]}"
            )
        with self._lock:
            # The policy's own choice, so a served decision and its explanation agree.
            j = int(choose(q, c, Policy("tradeoff", self._lambda)).model_index[0])
            s = self.settings
            i = self._next
            self._q[i], self._c[i] = q[0], c[0]
            self._spent[i] = c[0, j]
            self._live_gap[i] = quality_gap(q, c)[0]
            self._next = (i + 1) % s.window
            self._seen += 1
            n = min(self._seen, s.window)
            realised = float(self._spent[:n].mean())
            low = tradeoff_spend(self._q, self._c, _LAMBDA_HI)
            high = tradeoff_spend(self._q, self._c, 0.0)
            aim = self._target + s.gain * (self._target - realised)
            now = tradeoff_spend(self._q, self._c, self._lambda)
            step = s.max_step * max(high - low, 0.0)
            aim = min(max(aim, now - step), now + step)
            self._lambda = lambda_for_spend(self._q, self._c, aim)
            if self._seen % s.window == 0:
                self._check_drift()
            return j

    def _check_drift(self) -> None:
        psi = self.psi
        high = psi > self.settings.psi_warning
        if high and not self._warned:
            logger.warning(
                f"spend controller (target {self.target_per_1k:g} per 1,000 requests): live "
                f"quality estimates drifted from the reference (PSI {psi:.3f} > "
                f"{self.settings.psi_warning:g}); the trade-off follows the live traffic, but the "
                "spend reference is due a refresh"
            )
        self._warned = high
