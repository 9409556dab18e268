"""N-model routing policies against brute force on a fixed three-model table, and price files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from routellm_jax.eval.policy import (
    ModelPrice,
    Policy,
    PriceError,
    choose,
    cost_table,
    quality_from_strengths,
    read_prices,
)

# Three models (dear and good, middling, cheap and weak) on seven prompts; per-1k-token prices
# with different prompt lengths, so costs differ per prompt as well as per model.
QUALITY = np.array(
    [
        [0.95, 0.90, 0.40],
        [0.80, 0.45, 0.44],
        [0.60, 0.58, 0.57],
        [0.99, 0.30, 0.10],
        [0.70, 0.69, 0.20],
        [0.50, 0.52, 0.51],  # the dear model is not the best everywhere
        [0.85, 0.60, 0.59],
    ]
)
PRICES = [
    ModelPrice(per_call=0.5, input_per_1k=2.0, output_per_1k=4.0),
    ModelPrice(input_per_1k=0.5, output_per_1k=1.0),
    ModelPrice(per_call=0.01, input_per_1k=0.1, output_per_1k=0.1),
]
INPUT_TOKENS = np.array([100, 900, 250, 400, 50, 700, 300])
COST = cost_table(PRICES, INPUT_TOKENS, 500)
ALL = list(itertools.product(range(3), repeat=len(QUALITY)))  # every assignment: 3**7 = 2187


def brute_force(policy: Policy) -> tuple[float, float]:
    """(objective, spend) of the best assignment by enumeration, with the policy's tie rules:
    higher objective, then lower spend."""
    rows = np.arange(len(QUALITY))
    best = None
    for assignment in ALL:
        a = np.array(assignment)
        q, c = QUALITY[rows, a], COST[rows, a]
        if policy.kind == "budget":
            if (c > policy.value).any():
                continue
            key = (q.sum(), -c.sum())
        elif policy.kind == "batch_budget":
            if c.sum() > policy.value + 1e-12:
                continue
            key = (q.sum(), -c.sum())
        elif policy.kind == "quality_floor":
            if (q < policy.value).any():
                continue
            key = (-c.sum(), q.sum())
        else:
            key = ((q - policy.value * c / COST.max(axis=1)).sum(), -c.sum())
        if best is None or key > best:
            best = key
    assert best is not None, "the test's policy must be feasible"
    return best


def achieved(policy: Policy) -> tuple[float, float]:
    a = choose(QUALITY, COST, policy)
    q, c = a.quality, a.cost
    assert a.within_budget.all()
    if policy.kind in ("budget", "batch_budget"):
        return (q.sum(), -c.sum())
    if policy.kind == "quality_floor":
        return (-c.sum(), q.sum())
    return ((q - policy.value * c / COST.max(axis=1)).sum(), -c.sum())


@pytest.mark.parametrize(
    "policy",
    [
        Policy("budget", 1.2),
        Policy("budget", 0.8),
        Policy("budget", 3.0),
        Policy("batch_budget", 4.0),
        Policy("batch_budget", 2.0),
        Policy("batch_budget", 6.5),
        Policy("quality_floor", 0.5),
        Policy("quality_floor", 0.45),
        Policy("quality_floor", 0.3),
        Policy("tradeoff", 0.0),
        Policy("tradeoff", 0.3),
        Policy("tradeoff", 5.0),
    ],
    ids=str,
)
def test_matches_brute_force(policy: Policy) -> None:
    assert np.allclose(achieved(policy), brute_force(policy))


def test_batch_budget_spend_never_exceeds_budget_and_beats_greedy() -> None:
    budget = 4.0
    a = choose(QUALITY, COST, Policy("batch_budget", budget))
    assert a.cost.sum() <= budget
    # The per-request budget that spends the same total buys less quality (the batch policy can
    # spend where the gain is largest): it is not the per-prompt rule in disguise.
    per_request = choose(QUALITY, COST, Policy("budget", budget / len(QUALITY)))
    assert a.quality.sum() > per_request.quality.sum()


def test_infeasible_constraints_are_flagged() -> None:
    floor = choose(QUALITY, COST, Policy("quality_floor", 0.9))
    assert not floor.within_budget[2]  # nothing reaches 0.9 on prompt 2: the most likely model
    assert floor.model_index[2] == 0
    budget = choose(QUALITY, COST, Policy("budget", 0.0))
    assert not budget.within_budget.any()
    assert (budget.model_index == 2).all()  # the cheapest model everywhere
    batch = choose(QUALITY, COST, Policy("batch_budget", 0.01))
    assert not batch.within_budget.any() and (batch.model_index == 2).all()


def test_quality_from_strengths_is_the_pair_win_rate_for_two() -> None:
    s = np.array([[1.0, -0.5], [0.0, 2.0]])
    q = quality_from_strengths(s)
    win = 1 / (1 + np.exp(-(s[:, 0] - s[:, 1])))
    assert np.allclose(q[:, 0], win) and np.allclose(q[:, 1], 1 - win)
    with pytest.raises(ValueError, match="m >= 2"):
        quality_from_strengths(s[:, :1])


def test_policy_values_are_checked() -> None:
    with pytest.raises(ValueError, match="policy must be one of"):
        Policy("cheap", 1.0)
    with pytest.raises(ValueError, match="floor lies in"):
        Policy("quality_floor", 1.5)
    with pytest.raises(ValueError, match=">= 0"):
        Policy("budget", -1.0)


def test_price_file_errors_name_file_and_field(tmp_path: Path) -> None:
    good = tmp_path / "prices.json"
    good.write_text(json.dumps({"a": 0.01, "b": {"input_per_1k": 0.5, "output_per_1k": 1.5}}))
    prices = read_prices(good)
    assert prices["a"] == ModelPrice(per_call=0.01)
    assert prices["b"].output_per_1k == 1.5
    cases = {
        "{": "not valid JSON",
        "[]": "non-empty JSON object",
        json.dumps({"a": {"input_per_1k": "x"}}): r"prices.json: a.input_per_1k: must be a number",
        json.dumps({"a": {"per_cal": 1}}): r"prices.json: a: unknown field\(s\) \['per_cal'\]",
        json.dumps({"a": {"per_call": -1}}): r"a.per_call: must be a finite number >= 0",
        json.dumps({"a": "cheap"}): r"prices.json: a: a price is a number",
    }
    for text, message in cases.items():
        good.write_text(text)
        with pytest.raises(PriceError, match=message):
            read_prices(good)
    with pytest.raises(PriceError, match="missing.json: no such price file"):
        read_prices(tmp_path / "missing.json")
