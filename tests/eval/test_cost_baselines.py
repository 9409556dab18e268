"""Cost model (hand-computed from the paper's prices) and the no-training baselines."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.eval import baselines as B
from routellm_jax.eval.benchmarks import Benchmark
from routellm_jax.eval.cost import ModelPrice, cost_model, cost_report, parse_price
from routellm_jax.eval.metrics import compute_metrics, random_expected_curve

GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def test_paper_prices_by_hand():
    cm = cost_model(GPT4, MIXTRAL)
    # GPT-4: (95 * 10 + 264 * 30) / 1e6 = 0.00887 USD; Mixtral: 359 * 0.24 / 1e6 = 0.00008616
    assert cm.strong_request_cost == pytest.approx(0.00887)
    assert cm.weak_request_cost == pytest.approx(0.00008616)
    # blended GPT-4 price per 1M tokens = 8870 / 359 = 24.7 (paper App. D)
    assert cm.strong_request_cost / 359 * 1e6 == pytest.approx(24.7, abs=0.01)
    # half the calls: .5 + .5 * 0.00008616 / 0.00887
    assert cm.relative_cost(0.5) == pytest.approx(0.5 + 0.5 * 0.00008616 / 0.00887)
    assert cm.saving(1.0) == pytest.approx(0.0)
    assert np.isnan(cm.saving(float("nan")))


def test_cost_report_at_cpt():
    cm = cost_model("a", "b", {"a": ModelPrice(2, 2), "b": ModelPrice(0, 0)})
    curve = random_expected_curve(0.8, 0.6, 10)
    rep = cost_report(compute_metrics(curve, 0.8, 0.6), cm, curve.strong_share)
    assert rep["relative_cost_at_cpt_50"] == pytest.approx(0.5)
    assert rep["saving_at_cpt_80"] == pytest.approx(0.2)
    assert rep["strong_call_ratio_random_vs_router_at_cpt_50"] == pytest.approx(1.0)
    assert len(rep["relative_cost_per_point"]) == 11


def test_price_parsing_and_unknown_model():
    assert parse_price("m=1.5,2") == ("m", ModelPrice(1.5, 2.0))
    with pytest.raises(ValueError, match="MODEL=IN,OUT"):
        parse_price("m=1")
    with pytest.raises(KeyError, match="no price for model"):
        cost_model("unknown", MIXTRAL)


@pytest.fixture()
def toy() -> Benchmark:
    return Benchmark(
        "toy",
        np.array(["short", "a much longer prompt", "mid prompt", "x"], dtype=object),
        np.array([1.0, 0.0, 1.0, 1.0]),
        np.array([0.0, 1.0, 1.0, 1.0]),
        "s",
        "w",
    )


def test_oracle_baseline_routes_exactly_strong_better(toy):
    rates = B.oracle_win_rates(toy)
    assert rates.tolist() == [1.0, 0.0, 0.5, 0.5]
    assert B.oracle_router(toy)(["mid prompt", "short"]).tolist() == [0.5, 1.0]
    with pytest.raises(KeyError, match="not in benchmark 'toy'"):
        B.oracle_router(toy)(["unseen"])


def test_random_and_length_baselines(toy):
    r0 = B.baseline_win_rates("random", toy, seed=0)
    assert np.array_equal(r0, B.baseline_win_rates("random", toy, seed=0))
    assert not np.array_equal(r0, B.baseline_win_rates("random", toy, seed=1))
    assert ((r0 >= 0) & (r0 <= 1)).all()
    lengths = B.baseline_win_rates("prompt_length", toy)
    assert np.argsort(lengths).tolist() == [3, 0, 2, 1]  # longer -> higher win rate
    with pytest.raises(ValueError, match="unknown baseline"):
        B.baseline_win_rates("nope", toy)


def test_prices_fall_back_to_the_model_table():
    # the canonical model table prices claude-3-opus at $15 / $75 per 1M tokens
    cm = cost_model("claude-3-opus-20240229", MIXTRAL)
    assert cm.strong_request_cost == pytest.approx((95 * 15 + 264 * 75) / 1e6)
    # an explicit price wins over the table
    cm2 = cost_model(
        "claude-3-opus-20240229", MIXTRAL, {"claude-3-opus-20240229": ModelPrice(1, 1)}
    )
    assert cm2.strong_request_cost == pytest.approx(359 / 1e6)
