"""N-model cost-quality curves: the oracle bounds every router, random mixing is the single models'
hull, a router with perfect estimates matches the oracle, and the scalars read the hull."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routellm_jax.eval import n_model as N


def _bench(seed: int = 0, n: int = 300) -> N.NModelBenchmark:
    """Three models: dear and strong, middling, cheap and weak; correctness depends on a latent
    prompt difficulty, so routing on it pays."""
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(size=n)
    ability = np.array([0.95, 0.6, 0.3])
    correct = (rng.uniform(size=(n, 3)) < np.clip(ability - difficulty[:, None] + 0.4, 0, 1)) * 1.0
    price = np.array([10.0, 2.0, 0.5])
    cost = price * rng.uniform(0.8, 1.2, size=(n, 3))
    prompts = np.array([f"p{i}" for i in range(n)], dtype=object)
    return N.NModelBenchmark("toy", prompts, ("big", "mid", "small"), correct, cost)


def test_oracle_bounds_routers_and_perfect_estimates_reach_it() -> None:
    b = _bench()
    prices = b.prices()
    noisy = b.correct * 0.3 + np.random.default_rng(1).uniform(size=b.correct.shape)
    router = N.policy_curve(b, noisy, prices, "noisy")
    oracle = N.oracle_curve(b)
    grid = np.linspace(b.cost.mean(0).min(), b.cost.mean(0).max(), 50)
    ox, oy = oracle.hull()
    rx, ry = router.hull()
    assert (np.interp(grid, ox, oy) >= np.interp(grid, rx, ry) - 1e-12).all()
    # With the true correctness as its estimate a router reaches the oracle's best quality: every
    # prompt some model answers is answered.
    perfect = N.policy_curve(b, b.correct, prices, "perfect")
    assert perfect.quality.max() == pytest.approx(oracle.quality.max())
    assert perfect.quality.max() == pytest.approx(b.correct.max(axis=1).mean())
    low, high = b.prices().min(), b.prices().max()
    assert N.aiq(router, low, high) < N.aiq(perfect, low, high)


def test_random_mixing_is_the_hull_of_the_single_models() -> None:
    b = _bench()
    singles = N.single_model_curve(b)
    mixing = N.random_mixing_curve(b)
    assert mixing.spend[0] == pytest.approx(singles.spend.min())
    assert mixing.quality[-1] == pytest.approx(singles.quality.max())
    # Every single model lies on or under the hull.
    for x, y in zip(singles.spend, singles.quality):
        assert y <= np.interp(x, mixing.spend, mixing.quality) + 1e-12


def test_scalars_read_the_hull() -> None:
    b = _bench()
    reference, results = N.score_curves(b, [N.oracle_curve(b), N.random_mixing_curve(b)])
    oracle, mixing = results
    assert reference["best_model"] == "big" and reference["cheapest_model"] == "small"
    # Random mixing reaches the best single model's quality exactly at its spend; the oracle
    # reaches it for less and has a larger area.
    assert mixing.spend_to_best == pytest.approx(reference["best_spend"])
    assert oracle.spend_to_best < reference["best_spend"]
    assert oracle.aiq > mixing.aiq
    never = N.CostQualityCurve("flat", np.array([1.0]), np.array([0.1]), np.array([0.0]))
    assert math.isnan(N.spend_to_reach(never, 0.9))


def test_floor_curve_sweeps_from_cheapest_to_most_likely() -> None:
    b = _bench()
    estimate = np.tile([0.9, 0.6, 0.3], (len(b.prompts), 1))
    curve = N.floor_curve(b, estimate, b.prices(), "floor", floors=np.array([0.0, 0.5, 0.8, 1.0]))
    rows = np.arange(len(b.prompts))
    expected = [2, 1, 0, 0]  # cheapest reaching 0, 0.5, 0.8; nothing reaches 1: most likely
    for spend, j in zip(curve.spend, expected):
        assert spend == pytest.approx(b.cost[rows, j].mean())


def test_routerbench_has_eleven_models_and_costs(data_dir) -> None:
    test = N.routerbench_n_model(data_dir, "test")
    train = N.routerbench_n_model(data_dir, "train")
    assert len(test.models) == 11 and test.models == train.models
    assert "gpt-4-1106-preview" in test.models and "mixtral-8x7b-instruct-v0.1" in test.models
    assert 900 <= len(test.prompts) <= 953 and len(train.prompts) > 2000
    assert set(np.unique(test.correct)) <= {0.0, 1.0} and (test.cost > 0).all()
    assert set(test.task) == set(N.ROUTERBENCH_TASKS)
    with pytest.raises(ValueError, match="split"):
        N.routerbench_n_model(data_dir, "dev")


def test_unseen_prompts_drop_exact_and_near_duplicates_of_training_prompts() -> None:
    prompts = ["What is 2+2?", "Name a prime.", "Sort this list.", "Translate hello."]
    seen = ["  what is 2+2 ", "Sort the list please."]
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 8)).astype(np.float32)
    near = emb[2] + 0.01 * rng.normal(size=8)  # "Sort the list please." embeds next to prompt 2
    seen_emb = np.stack([rng.normal(size=8), near]).astype(np.float32)
    keep = N.unseen_prompts(prompts, seen, emb, seen_emb)
    assert keep.tolist() == [False, True, False, True]  # exact (normalised), -, near, -
    assert N.unseen_prompts(prompts, [], emb, np.zeros((0, 8), np.float32)).all()
    held = _bench(n=4).rows(keep, "toy held out")
    assert held.name == "toy held out" and held.prompts.tolist() == ["p1", "p3"]
    assert held.correct.shape == (2, 3) and held.cost.shape == (2, 3)


def test_n_model_experiment_routes_each_question_without_its_files_demonstrations(
    data_dir,
) -> None:
    from experiments.n_model import routed_prompts

    test = N.routerbench_n_model(data_dir, "test")
    routed = routed_prompts(test)
    assert len(routed) == len(test.prompts)
    assert all(str(p).endswith(q) for p, q in zip(test.prompts, routed))
    for task in N.ROUTERBENCH_TASKS:
        rows = [q for q, t in zip(routed, test.task) if t == task]
        assert len(set(rows)) > 0.95 * len(rows)  # questions, not one block per file
    assert max(map(len, routed)) < 1500
