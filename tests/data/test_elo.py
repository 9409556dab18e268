"""Bradley-Terry Elo, bootstrap, tier dynamic program, outcomes -> battles (hand-checked)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from routellm_jax.data.elo import (
    bootstrap_elo,
    compute_mle_elo,
    compute_tiers,
    fit_bradley_terry,
    outcomes_to_comparisons,
    strong_weak_sets,
    win_matrix,
)
from routellm_jax.data.records import Comparison, ComparisonTable, Outcome, OutcomeTable


def _battles(spec: list[tuple[str, str, str, int]]) -> ComparisonTable:
    rows = []
    for a, b, outcome, n in spec:
        rows += [Comparison("q", a, b, outcome)] * n
    return ComparisonTable.from_records(rows)


def test_always_wins_is_higher_and_finite() -> None:
    elo = compute_mle_elo(_battles([("A", "B", "a", 10)]))
    assert np.isfinite(elo.to_numpy()).all()
    assert elo["A"] > elo["B"] + 400  # a clear gap; the tiny ridge keeps it finite


def test_win_ratio_gives_log_odds_gap() -> None:
    # 3 wins, 1 loss: P(A beats B) = 3/4 -> gap = 400 * log10(3).
    elo = compute_mle_elo(_battles([("A", "B", "a", 3), ("B", "A", "a", 1)]))
    assert elo["A"] - elo["B"] == pytest.approx(400 * math.log10(3), abs=0.01)
    # Without the anchor model, ratings centre on the initial 1000.
    assert (elo["A"] + elo["B"]) / 2 == pytest.approx(1000.0, abs=0.01)


def test_ties_count_half() -> None:
    only_ties = compute_mle_elo(_battles([("A", "B", "tie", 5)]))
    assert only_ties["A"] == pytest.approx(only_ties["B"], abs=1e-6)
    # 1 win + 1 tie = 1.5 : 0.5 -> the same gap as 3 : 1.
    elo = compute_mle_elo(_battles([("A", "B", "a", 1), ("A", "B", "tie", 1)]))
    assert elo["A"] - elo["B"] == pytest.approx(400 * math.log10(3), abs=0.01)


def test_weights_equal_repeats() -> None:
    weighted = ComparisonTable.from_records(
        [Comparison("q", "A", "B", "a", weight=3.0), Comparison("q", "A", "B", "b", weight=1.0)]
    )
    repeated = _battles([("A", "B", "a", 3), ("A", "B", "b", 1)])
    np.testing.assert_allclose(
        compute_mle_elo(weighted).sort_index(), compute_mle_elo(repeated).sort_index(), atol=1e-6
    )


def test_anchor() -> None:
    t = _battles([("llama-2-70b-chat", "B", "a", 3), ("B", "llama-2-70b-chat", "a", 1)])
    elo = compute_mle_elo(t)
    assert elo["llama-2-70b-chat"] == pytest.approx(1082.0)
    assert elo["B"] == pytest.approx(1082.0 - 400 * math.log10(3), abs=0.01)
    assert compute_mle_elo(t, anchor=("B", 900.0))["B"] == pytest.approx(900.0)


def test_mle_stationarity_on_random_data() -> None:
    # At the MLE each model's expected wins equal its actual (weighted) wins.
    rng = np.random.default_rng(0)
    models = ["m0", "m1", "m2", "m3", "m4"]
    rows = [
        Comparison(
            "q",
            models[i],
            models[j],
            ["a", "b", "tie"][rng.integers(3)],
            float(rng.uniform(0.2, 2)),
        )
        for i, j in rng.integers(0, 5, size=(400, 2))
        if i != j
    ]
    names, W = win_matrix(ComparisonTable.from_records(rows))
    s = fit_bradley_terry(W, l2=0.0 + 1e-12)
    p = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
    np.testing.assert_allclose(W.sum(axis=1), ((W + W.T) * p).sum(axis=1), atol=1e-6)


def test_bootstrap_deterministic_and_close() -> None:
    t = _battles(
        [("A", "B", "a", 30), ("B", "A", "a", 10), ("B", "C", "a", 20), ("C", "B", "a", 20)]
    )
    b1 = bootstrap_elo(t, n_rounds=30, seed=4)
    b2 = bootstrap_elo(t, n_rounds=30, seed=4)
    assert b1.equals(b2)
    mle = compute_mle_elo(t)
    for m in "ABC":
        assert b1.loc[m, "q0.025"] <= b1.loc[m, "q0.5"] <= b1.loc[m, "q0.975"]
        assert abs(b1.loc[m, "q0.5"] - mle[m]) < 40


def test_tiers_hand_example() -> None:
    ratings = {"a": 1300, "b": 1290, "c": 1000, "d": 990, "e": 700}
    assert compute_tiers(ratings, n_tiers=3) == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}
    assert compute_tiers(ratings, n_tiers=10) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    assert compute_tiers(ratings, n_tiers=1) == dict.fromkeys(ratings, 0)
    assert strong_weak_sets(compute_tiers(ratings, 3)) == ({"a", "b", "c", "d"}, {"e"})


@pytest.mark.parametrize("objective", ["sse", "variance"])
def test_tiers_optimal_by_brute_force(objective: str) -> None:
    rng = np.random.default_rng(1)
    x = np.sort(rng.normal(1100, 120, size=8))[::-1]
    ratings = {f"m{i}": float(v) for i, v in enumerate(x)}
    k = 3

    def cost(seg: np.ndarray) -> float:
        sse = float(((seg - seg.mean()) ** 2).sum())
        return sse if objective == "sse" else sse / len(seg)

    best = min(
        sum(cost(x[i:j]) for i, j in zip((0, *cuts), (*cuts, len(x))))
        for cuts in itertools.combinations(range(1, len(x)), k - 1)
    )
    tiers = compute_tiers(ratings, k, objective=objective)
    got = sum(cost(np.array([ratings[m] for m in ratings if tiers[m] == t])) for t in range(k))
    assert got == pytest.approx(best)
    # Tiers are contiguous in rating and tier 0 is the best.
    order = sorted(ratings, key=ratings.get, reverse=True)
    assert [tiers[m] for m in order] == sorted(tiers[m] for m in order)


def test_outcomes_to_comparisons_all_pairs() -> None:
    o = OutcomeTable.from_records(
        [
            Outcome("p1", "x", 1.0),
            Outcome("p1", "y", 0.0),
            Outcome("p1", "z", 1.0),
            Outcome("p2", "x", 0.0),
            Outcome("p2", "y", 1.0),  # z missing on p2
        ]
    )
    c = outcomes_to_comparisons(o)
    got = [(r.prompt, r.model_a, r.model_b, r.outcome) for r in c.to_records()]
    assert got == [
        ("p1", "x", "y", "a"),
        ("p1", "x", "z", "tie"),
        ("p1", "y", "z", "b"),
        ("p2", "x", "y", "b"),
    ]
    only = outcomes_to_comparisons(o, pairs=[("z", "x"), ("y", "x")], drop_ties=True)
    assert [(r.prompt, r.model_a, r.model_b, r.outcome) for r in only.to_records()] == [
        ("p1", "y", "x", "b"),
        ("p2", "y", "x", "a"),
    ]


def test_outcomes_to_comparisons_tie_band_and_sources() -> None:
    o = OutcomeTable.from_records(
        [
            Outcome("p", "x", 9.0, "mt", "grade"),
            Outcome("p", "y", 8.0, "mt", "grade"),
            Outcome("p", "y", 2.0, "other", "grade"),  # same prompt, other source: not compared
        ]
    )
    assert outcomes_to_comparisons(o, tie_band=1.0).outcome.tolist() == [2]
    assert outcomes_to_comparisons(o, tie_band=0.5).outcome.tolist() == [0]
    with pytest.raises(ValueError):
        outcomes_to_comparisons(o, tie_band=-1)


def test_outcomes_to_comparisons_scales() -> None:
    # 2,000 prompts x 11 models -> 55 battles per prompt, vectorised.
    rng = np.random.default_rng(0)
    n_p, n_m = 2000, 11
    o = OutcomeTable(
        prompt=np.repeat(np.array([f"p{i}" for i in range(n_p)], dtype=object), n_m),
        model=np.tile(np.array([f"m{j:02d}" for j in range(n_m)], dtype=object), n_p),
        score=rng.integers(0, 2, n_p * n_m).astype(np.float32),
        source=np.full(n_p * n_m, "s", dtype=object),
        kind=np.full(n_p * n_m, "correct", dtype=object),
    )
    c = outcomes_to_comparisons(o)
    assert len(c) == n_p * n_m * (n_m - 1) // 2
