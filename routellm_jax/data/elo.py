"""Bradley-Terry Elo with ties, model tiers, and per-model outcomes as battles.

* :func:`compute_mle_elo` -- the maximum-likelihood Bradley-Terry ratings of the RouteLLM /
  Chatbot Arena reference code (``compute_mle_elo``): scale 400, base 10, initial rating 1000, a tie
  counted as half a win for each side, battle weights as sample weights, and the ratings shifted so
  that ``llama-2-70b-chat`` = 1082 when it is present (the reference code's anchor). The reference
  fits scikit-learn's logistic regression; here the same likelihood is maximised by Newton's method
  in numpy on the aggregated win matrix (exact, a few iterations for hundreds of models).
* :func:`bootstrap_elo` -- ratings over resampled battles (median and quantiles).
* :func:`compute_tiers` -- the paper's dynamic program: sort models by rating and split them into
  ``n_tiers`` contiguous groups minimising within-tier variance; tier 0 holds the best models.
* :func:`outcomes_to_comparisons` -- correctness / 1-10 grades become battles between the models
  graded on the same prompt (score difference; a tie inside ``tie_band``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from routellm_jax.data.records import (
    OUTCOME_A,
    OUTCOME_B,
    OUTCOME_TIE,
    ComparisonTable,
    OutcomeTable,
)

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
ANCHOR = ("llama-2-70b-chat", 1082.0)


def win_matrix(
    table: ComparisonTable, models: Sequence[str] | None = None, counts: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """``(models, W)`` with ``W[i, j]`` = weighted wins of model i over model j (a tie adds 0.5
    to both directions). ``counts`` multiplies each battle's weight (used by the bootstrap).

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "a", "b", "tie")])
        >>> win_matrix(t)[1].tolist()
        [[0.0, 0.5], [0.5, 0.0]]
    """
    models = table.models() if models is None else list(models)
    index = {m: i for i, m in enumerate(models)}
    n = len(models)
    a = np.fromiter((index[m] for m in table.model_a), np.int64, len(table))
    b = np.fromiter((index[m] for m in table.model_b), np.int64, len(table))
    w = table.weight.astype(np.float64)
    if counts is not None:
        w = w * counts
    W = np.zeros((n, n), dtype=np.float64)
    o = table.outcome
    np.add.at(W, (a[o == OUTCOME_A], b[o == OUTCOME_A]), w[o == OUTCOME_A])
    np.add.at(W, (b[o == OUTCOME_B], a[o == OUTCOME_B]), w[o == OUTCOME_B])
    tie = o == OUTCOME_TIE
    np.add.at(W, (a[tie], b[tie]), 0.5 * w[tie])
    np.add.at(W, (b[tie], a[tie]), 0.5 * w[tie])
    return models, W


def fit_bradley_terry(
    W: np.ndarray, *, l2: float = 1e-6, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray:
    """Natural-log-odds strengths ``s`` maximising ``sum_ij W_ij log sigmoid(s_i - s_j)``.

    ``l2`` (a ridge on ``s``, relative to the total weight) keeps the optimum finite when a model
    never loses or never wins and fixes the free shift; with connected data it moves ratings by far
    less than a rating point. Newton's method on the concave objective.

    Example:
        >>> s = fit_bradley_terry(np.array([[0.0, 3.0], [1.0, 0.0]]))
        >>> round(float(s[0] - s[1]), 3)  # log(3/1)
        1.099
    """
    n = W.shape[0]
    N = W + W.T  # battles per pair
    lam = l2 * max(float(N.sum()) / 2.0, 1.0)
    s = np.zeros(n)
    for _ in range(max_iter):
        diff = s[:, None] - s[None, :]
        p = 0.5 * (1.0 + np.tanh(0.5 * diff))  # P(i beats j) = sigmoid(diff), overflow-free
        grad = (W - N * p).sum(axis=1) - lam * s
        c = N * p * (1.0 - p)
        H = c.copy()
        np.fill_diagonal(H, 0.0)
        H[np.diag_indices(n)] = -c.sum(axis=1) + np.diag(c)
        H -= lam * np.eye(n)
        step = np.linalg.solve(H, grad)
        s = s - step
        if np.max(np.abs(step)) < tol:
            break
    return s


def compute_mle_elo(
    table: ComparisonTable,
    *,
    scale: float = SCALE,
    base: float = BASE,
    init_rating: float = INIT_RATING,
    anchor: tuple[str, float] | None = ANCHOR,
    l2: float = 1e-6,
) -> pd.Series:
    """Bradley-Terry MLE Elo ratings, highest first (a ``pd.Series`` indexed by model).

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records(
        ...     [Comparison("q", "a", "b", "a")] * 3 + [Comparison("q", "a", "b", "b")])
        >>> elo = compute_mle_elo(t)
        >>> round(float(elo["a"] - elo["b"]), 1)  # 400 * log10(3)
        190.8
    """
    models, W = win_matrix(table)
    if not models:
        return pd.Series(dtype=np.float64)
    s = fit_bradley_terry(W, l2=l2)
    ratings = init_rating + scale * s / np.log(base)
    ratings = _anchor(ratings, models, anchor)
    return pd.Series(ratings, index=models).sort_values(ascending=False)


def _anchor(ratings: np.ndarray, models: list[str], anchor: tuple[str, float] | None) -> np.ndarray:
    if anchor is not None and anchor[0] in models:
        ratings = ratings + (anchor[1] - ratings[models.index(anchor[0])])
    return ratings


def bootstrap_elo(
    table: ComparisonTable,
    *,
    n_rounds: int = 100,
    seed: int = 0,
    quantiles: Sequence[float] = (0.025, 0.5, 0.975),
    anchor: tuple[str, float] | None = ANCHOR,
    l2: float = 1e-6,
) -> pd.DataFrame:
    """Ratings of ``n_rounds`` bootstrap resamples of the battles; one row per model with the
    requested quantiles (columns ``q0.025`` ...), sorted by the median when present.

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records(
        ...     [Comparison("q", "a", "b", "a")] * 30 + [Comparison("q", "a", "b", "b")] * 10)
        >>> ratings = bootstrap_elo(t, n_rounds=50, seed=1)
        >>> ratings.index.tolist(), ratings.columns.tolist()
        (['a', 'b'], ['q0.025', 'q0.5', 'q0.975'])
        >>> bool((ratings["q0.025"] <= ratings["q0.975"]).all())
        True
    """
    models, _ = win_matrix(table)
    rng = np.random.default_rng(seed)
    n = len(table)
    rounds = np.empty((n_rounds, len(models)))
    for r in range(n_rounds):
        counts = rng.multinomial(n, np.full(n, 1.0 / n)) if n else np.zeros(0)
        _, W = win_matrix(table, models, counts=counts)
        s = fit_bradley_terry(W, l2=l2)
        rounds[r] = _anchor(INIT_RATING + SCALE * s / np.log(BASE), models, anchor)
    out = pd.DataFrame({f"q{q:g}": np.quantile(rounds, q, axis=0) for q in quantiles}, index=models)
    if "q0.5" in out.columns:
        out = out.sort_values("q0.5", ascending=False)
    return out


def compute_tiers(
    ratings: Mapping[str, float] | pd.Series, n_tiers: int = 10, *, objective: str = "variance"
) -> dict[str, int]:
    """Split models into ``n_tiers`` contiguous rating groups by dynamic programming.

    ``objective="variance"`` (default) minimises the sum of each tier's own variance, the cost the
    RouteLLM reference code's dynamic program adds up (``np.var`` of a tier's ratings);
    ``"sse"`` minimises the total within-tier sum of squared deviations (optimal 1-D k-means),
    which does not favour singleton tiers at the extremes. Tier 0 holds the highest ratings. With
    fewer models than tiers, each model gets its own tier.

    Example:
        >>> compute_tiers({"a": 1300, "b": 1290, "c": 1000, "d": 990}, n_tiers=2)
        {'a': 0, 'b': 0, 'c': 1, 'd': 1}
    """
    if objective not in ("sse", "variance"):
        raise ValueError(f"objective must be 'sse' or 'variance', got {objective!r}")
    if n_tiers < 1:
        raise ValueError(f"n_tiers must be >= 1, got {n_tiers}")
    series = pd.Series(dict(ratings), dtype=np.float64).sort_values(ascending=False, kind="stable")
    x = series.to_numpy()
    n = len(x)
    if n == 0:
        return {}
    k = min(n_tiers, n)
    # Segment costs from prefix sums: cost(i, j) covers x[i:j].
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    i_idx, j_idx = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    length = np.maximum(j_idx - i_idx, 1)
    seg_sum = c1[j_idx] - c1[i_idx]
    sse = (c2[j_idx] - c2[i_idx]) - seg_sum**2 / length
    sse = np.maximum(sse, 0.0)
    cost = sse if objective == "sse" else sse / length
    cost = np.where(j_idx > i_idx, cost, np.inf)  # [i, j]: tier = models i..j-1
    dp = np.full((k + 1, n + 1), np.inf)
    arg = np.zeros((k + 1, n + 1), dtype=np.int64)
    dp[0, 0] = 0.0
    for t in range(1, k + 1):
        total = dp[t - 1][:, None] + cost  # [i, j]
        arg[t] = np.argmin(total, axis=0)
        dp[t] = total[arg[t], np.arange(n + 1)]
    tiers = np.empty(n, dtype=np.int64)
    j = n
    for t in range(k, 0, -1):
        i = int(arg[t, j])
        tiers[i:j] = t - 1
        j = i
    return {m: int(t) for m, t in zip(series.index, tiers)}


def strong_weak_sets(
    tiers: Mapping[str, int], strong: Collection[int] = (0, 1), weak: Collection[int] = (2,)
) -> tuple[set[str], set[str]]:
    """Models in the strong tiers and in the weak tiers (the paper: tiers 0-1 vs tier 2).

    Example:
        >>> strong, weak = strong_weak_sets({"a": 0, "b": 1, "c": 2, "d": 3})
        >>> sorted(strong), sorted(weak)
        (['a', 'b'], ['c'])
    """
    strong, weak = set(strong), set(weak)
    if strong & weak:
        raise ValueError(f"tiers in both sets: {sorted(strong & weak)}")
    return (
        {m for m, t in tiers.items() if t in strong},
        {m for m, t in tiers.items() if t in weak},
    )


def outcomes_to_comparisons(
    outcomes: OutcomeTable,
    *,
    tie_band: float = 0.0,
    pairs: Sequence[tuple[str, str]] | None = None,
    drop_ties: bool = False,
) -> ComparisonTable:
    """Per-model outcomes -> battles between the models scored on the same prompt (and source).

    For models i, j on one prompt: ``d = score_i - score_j``; i wins if ``d > tie_band``, j wins if
    ``d < -tie_band``, otherwise a tie. With ``pairs`` only those (model_a, model_b) pairs are
    formed (in that orientation); otherwise every unordered pair of the models present, in sorted
    order (``n`` models -> ``n (n - 1) / 2`` battles per prompt). Repeated (prompt, model) scores
    are averaged first. Vectorised over prompts and pairs.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> o = OutcomeTable.from_records([Outcome("q", "x", 1.0), Outcome("q", "y", 0.0)])
        >>> outcomes_to_comparisons(o).to_records()[0].outcome
        'a'
    """
    if tie_band < 0:
        raise ValueError(f"tie_band must be >= 0, got {tie_band}")
    if len(outcomes) == 0:
        return ComparisonTable.empty()
    for a, b in pairs or ():
        if a == b:
            raise ValueError(f"pair ({a!r}, {b!r}) pairs a model with itself")
    # One source at a time: each has its own model set, so the dense [prompts, pairs] score
    # differences stay small even when sources with many different models are mixed.
    src_codes, src_uniques = pd.factorize(pd.Series(outcomes.source, dtype=object))
    parts = [
        _source_battles(outcomes.take(np.flatnonzero(src_codes == k)), tie_band, pairs, drop_ties)
        for k in range(len(src_uniques))
    ]
    return ComparisonTable.concat([p for p in parts if len(p)])


def _source_battles(
    outcomes: OutcomeTable,
    tie_band: float,
    pairs: Sequence[tuple[str, str]] | None,
    drop_ties: bool,
) -> ComparisonTable:
    """outcomes_to_comparisons for rows of a single source."""
    g_codes, g_uniques = pd.factorize(pd.Series(outcomes.prompt, dtype=object))
    m_codes, m_uniques = pd.factorize(pd.Series(outcomes.model, dtype=object), sort=True)
    n_g, n_m = len(g_uniques), len(m_uniques)
    total = np.zeros((n_g, n_m))
    count = np.zeros((n_g, n_m))
    np.add.at(total, (g_codes, m_codes), outcomes.score.astype(np.float64))
    np.add.at(count, (g_codes, m_codes), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)  # [prompts, models]
    models = list(m_uniques)
    m_index = {m: i for i, m in enumerate(models)}
    if pairs is None:
        ia, ja = np.triu_indices(n_m, k=1)
    else:
        kept = [(a, b) for a, b in pairs if a in m_index and b in m_index]
        ia = np.array([m_index[a] for a, _ in kept], dtype=np.int64)
        ja = np.array([m_index[b] for _, b in kept], dtype=np.int64)
    if len(ia) == 0:
        return ComparisonTable.empty()
    D = S[:, ia] - S[:, ja]  # [prompts, pairs]
    g_idx, p_idx = np.nonzero(~np.isnan(D))  # prompt-major order
    d = D[g_idx, p_idx]
    outcome = np.where(d > tie_band, OUTCOME_A, np.where(d < -tie_band, OUTCOME_B, OUTCOME_TIE))
    if drop_ties:
        keep = outcome != OUTCOME_TIE
        g_idx, p_idx, outcome = g_idx[keep], p_idx[keep], outcome[keep]
    prompts = np.asarray(g_uniques, dtype=object)
    model_arr = np.asarray(models, dtype=object)
    return ComparisonTable(
        prompt=prompts[g_idx],
        model_a=model_arr[ia[p_idx]],
        model_b=model_arr[ja[p_idx]],
        outcome=outcome.astype(np.int8),
        weight=np.ones(len(g_idx), dtype=np.float32),
        source=outcomes.source[:1].repeat(len(g_idx)),
    )
