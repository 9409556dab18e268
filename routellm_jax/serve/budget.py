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

import numpy as np

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
