"""The online spend controller for N-model routing: its trade-off search matches a brute-force
sweep, it starts from the reference's trade-off and moves in bounded steps, it keeps spend per
1,000 requests on target when traffic shifts (a replayed MMLU -> GSM8K -> chat stream scored by the
bundled default router over three priced models) where the reference's fixed trade-off drifts, and
in the server it runs for router:spend= names, exports its state in /metrics and turns off with
the share-control flag."""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pytest

from routellm_jax.eval.policy import ModelPrice, Policy, choose
from routellm_jax.serve.budget import (
    PSI_WARNING,
    ControllerSettings,
    SpendController,
    lambda_for_spend,
    tradeoff_spend,
)
from routellm_jax.serve.n_model import ModelUpstream, UpstreamTable
from routellm_jax.serve.routing import RoutingError
from routellm_jax.serve.tenants import PromptSet
from routellm_jax.serve.testing import HashRouter

WINDOW = 100  # the warm-up: one controller window of decisions
SEGMENT = 200  # prompts of each kind of traffic in the replay
TARGET = 3.0  # USD per 1,000 requests
TOLERANCE = 0.05  # realised spend within 5% of the target after the warm-up
# Three models of the default router's table, at list prices per 1k tokens (USD).
MODELS = ["gpt-4-1106-preview", "gpt-3.5-turbo-1106", "mixtral-8x7b-instruct-v0.1"]
PRICES = [
    ModelPrice(input_per_1k=0.01, output_per_1k=0.03),
    ModelPrice(input_per_1k=0.001, output_per_1k=0.002),
    ModelPrice(input_per_1k=0.0006, output_per_1k=0.0006),
]


def _tables(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    quality = rng.uniform(size=(n, 3))
    cost = np.tile([10.0, 3.0, 1.0], (n, 1)) * rng.uniform(0.5, 1.5, size=(n, 1))
    return quality, cost


def test_lambda_search_matches_a_brute_force_sweep() -> None:
    quality, cost = _tables(60, 0)
    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1e4, 4000)])
    spends = np.array([choose(quality, cost, Policy("tradeoff", g)).cost.mean() for g in grid])
    assert np.all(np.diff(spends) <= 1e-12)  # spend never rises with lambda
    for target in (2.0, 4.0, 6.5, 9.0):
        lam = lambda_for_spend(quality, cost, target)
        # The least swept lambda within budget spends what the search's lambda spends.
        brute = grid[np.argmax(spends <= target)]
        assert tradeoff_spend(quality, cost, lam) <= target
        assert tradeoff_spend(quality, cost, lam) == pytest.approx(
            choose(quality, cost, Policy("tradeoff", brute)).cost.mean()
        )


def test_starts_from_the_reference_and_moves_in_bounded_steps() -> None:
    quality, cost = _tables(400, 1)
    settings = ControllerSettings(window=WINDOW, max_step=0.02)
    c = SpendController(5000.0, quality, cost, settings)
    assert c.tradeoff == pytest.approx(lambda_for_spend(quality, cost, 5.0))
    assert tradeoff_spend(quality, cost, c.tradeoff) <= 5.0
    for i in range(300):
        c.decide(quality[i], cost[i])
    steady = c.tradeoff
    # A burst of 10 requests on which only the dearest model is any good: each update moves the
    # window's spend by at most max_step of its range, plus what the new row itself adds.
    burst_q, burst_c = np.array([1.0, 0.0, 0.0]), np.array([10.0, 3.0, 1.0])
    for _ in range(10):
        before = tradeoff_spend(c._q, c._c, c.tradeoff)
        span = tradeoff_spend(c._q, c._c, 0.0) - tradeoff_spend(c._q, c._c, 1e4)
        c.decide(burst_q, burst_c)
        after = tradeoff_spend(c._q, c._c, c.tradeoff)
        assert abs(after - before) <= 0.02 * span + 10.0 / WINDOW + 1e-9
    assert abs(c.tradeoff - steady) < 0.5 * max(steady, 0.1)
    with pytest.raises(ValueError, match="must be > 0"):
        SpendController(0.0, quality, cost)


# ---- the replayed stream, scored by the bundled default router ------------------------------


@pytest.fixture(scope="module")
def shifted_quality(data_dir):
    """Quality rows and costs of 200 MMLU, then 200 GSM8K, then 200 chat (AlpacaEval) prompts
    among three models, and of 256 prompts of the card's calibration reference set."""
    import routellm_jax
    from routellm_jax.api import DEFAULT_ROUTER
    from routellm_jax.data.judge_split import reference_prompts
    from routellm_jax.eval.benchmarks import gsm8k_benchmark, mmlu_benchmark

    rng = np.random.default_rng(0)
    mmlu = mmlu_benchmark(data_dir).prompts
    gsm8k = gsm8k_benchmark(data_dir).prompts
    with open(data_dir / "derived" / "alpaca_eval_prompts.jsonl", encoding="utf-8") as f:
        chat = [json.loads(line)["instruction"] for line in f if line.strip()]
    stream = [str(p) for ps in (mmlu, gsm8k, chat) for p in rng.choice(ps, SEGMENT, replace=False)]
    reference, _ = reference_prompts(data_dir=data_dir)
    reference = [reference[int(i * len(reference) / 256)] for i in range(256)]
    router = routellm_jax.load(DEFAULT_ROUTER)
    table = UpstreamTable(
        tuple(ModelUpstream(m, m, "http://h:1/v1", p) for m, p in zip(MODELS, PRICES))
    )
    return (
        router.model_quality(stream, MODELS),
        table.costs(stream, None),
        router.model_quality(reference, MODELS),
        table.costs(reference, None),
    )


@pytest.mark.slow  # scores 856 real prompts with the MiniLM router
def test_controller_holds_spend_where_the_fixed_tradeoff_drifts(shifted_quality, caplog) -> None:
    quality, cost, ref_quality, ref_cost = shifted_quality
    controller = SpendController(TARGET, ref_quality, ref_cost, ControllerSettings(window=WINDOW))
    lam0 = controller.initial_tradeoff
    spent, psi = [], []
    with caplog.at_level(logging.WARNING, logger="routellm_jax.serve"):
        for q, c in zip(quality, cost):
            spent.append(c[controller.decide(q, c)])
            psi.append(controller.psi)
    spent = np.array(spent) * 1000
    fixed = choose(quality, cost, Policy("tradeoff", lam0)).cost * 1000
    controlled, drifted = spent[WINDOW:].mean(), fixed[WINDOW:].mean()
    segments = [slice(i * SEGMENT, (i + 1) * SEGMENT) for i in range(3)]
    print(
        f"target {TARGET} per 1,000 requests, after a warm-up of {WINDOW}: controlled "
        f"{controlled:.3f}, fixed trade-off (lambda {lam0:.3f}) {drifted:.3f}; per segment "
        f"(MMLU, GSM8K, chat) controlled {[round(float(spent[s].mean()), 3) for s in segments]}, "
        f"fixed {[round(float(fixed[s].mean()), 3) for s in segments]}; PSI at each segment's "
        f"end {[round(psi[s.stop - 1], 3) for s in segments]}"
    )
    assert abs(controlled - TARGET) <= TOLERANCE * TARGET
    assert abs(drifted - TARGET) > 6 * TOLERANCE * TARGET
    # The drift gauge rises on the shift to GSM8K (the reference is chat), with one warning.
    end_mmlu, end_gsm8k, end_chat = (psi[s.stop - 1] for s in segments)
    assert end_gsm8k > max(end_mmlu, PSI_WARNING) and end_chat < end_gsm8k
    assert "live quality estimates drifted" in caplog.text


# ---- in the server ------------------------------------------------------------------------------

NAMES = ["dear", "mid", "cheap"]
PER_CALL = [0.01, 0.003, 0.001]


class _ShiftingQualityRouter(HashRouter):
    """Hash quality rows; on prompts starting with "math" the dear model is far better."""

    def model_quality(self, prompts, models):
        base = super().model_quality(prompts, models)
        shifted = np.array([p.startswith("math") for p in prompts])[:, None]
        lift = np.array([0.6, 0.2, 0.0])[None, :]
        return np.where(shifted, 0.4 * base + lift, base)


@pytest.fixture
def n_server(start_server):
    def start_n(**overrides):
        table = UpstreamTable(
            tuple(
                ModelUpstream(n, n, "http://127.0.0.1:9/v1", ModelPrice(per_call=p))
                for n, p in zip(NAMES, PER_CALL)
            )
        )
        reference = PromptSet("chat", tuple(f"chat reference {i}" for i in range(300)), "test")
        settings = dict(upstream_table=table, spend_reference=reference)
        return start_server({"shift": _ShiftingQualityRouter("shift")}, **(settings | overrides))

    return start_n


def _route(server, model: str, prompts: list[str], headers=None) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/route",
        json={"model": model, "prompt": prompts},
        headers=headers or {},
        timeout=30,
    )


def test_server_controls_spend_names_and_exports_the_state(n_server) -> None:
    server = n_server()
    target = 4.0  # per 1,000 requests: between all-cheap (1) and all-dear (10)
    calm = _route(server, f"router-shift:spend={target}", [f"chat {i}" for i in range(200)])
    assert calm.status_code == 200, calm.text
    rows = _route(server, f"router-shift:spend={target}", [f"math {i}" for i in range(400)])
    rows = rows.json()["data"]
    spent = np.array([r["cost"] for r in rows]) * 1000
    assert rows[0]["spend_target_per_1k"] == target and rows[-1]["spend_realised_per_1k"] > 0
    lambdas = {r["policy"] for r in rows}
    assert len(lambdas) > 10  # the trade-off moved with the traffic
    assert abs(spent[WINDOW:].mean() - target) <= 0.1 * target
    text = httpx.get(server.url + "/metrics").text
    labels = f'calibration="",router="shift",target="{target!r}"'
    assert f"routellm_spend_target{{{labels}}} {target}" in text
    for name in ("routellm_spend_realised", "routellm_spend_tradeoff"):
        assert f"{name}{{{labels}}}" in text
    psi = float(text.split(f"routellm_spend_psi{{{labels}}} ")[1].split()[0])
    assert psi > PSI_WARNING


def test_flag_keeps_the_reference_tradeoff(n_server) -> None:
    server = n_server(share_control=False)
    rows = _route(server, "router-shift:spend=4", [f"math {i}" for i in range(200)]).json()["data"]
    assert len({r["policy"] for r in rows}) == 1  # one fixed trade-off
    spent = np.mean([r["cost"] for r in rows]) * 1000
    assert spent > 6.0  # on maths the reference's trade-off overspends
    assert "routellm_spend_realised{" not in httpx.get(server.url + "/metrics").text


def test_spend_names_need_reference_prompts_and_a_positive_target(n_server) -> None:
    server = n_server(spend_reference=None)
    reply = _route(server, "router-shift:spend=4", ["a"])
    assert reply.status_code == 400 and "--spend-reference" in reply.json()["error"]["message"]
    reply = _route(server, "router-shift:spend=0", ["a"])
    assert reply.status_code == 400 and "must be > 0" in reply.json()["error"]["message"]
    assert _route(server, "router-shift:tradeoff=0.5", ["a"]).status_code == 200


def test_controller_client_takes_the_servers_table_file_and_spend_target(
    n_server, tmp_path
) -> None:
    from routellm_jax.serve.client import Controller

    server = n_server()
    path = tmp_path / "upstreams.json"
    entries = [
        {"name": n, "base_url": "http://127.0.0.1:9/v1", "price": {"per_call": p}}
        for n, p in zip(NAMES, PER_CALL)
    ]
    path.write_text(json.dumps({"upstreams": entries}))
    controller = Controller(
        routers=[_ShiftingQualityRouter("shift")],
        upstream_table=str(path),
        spend_reference=[f"chat reference {i}" for i in range(300)],
    )
    prompts = [f"chat {i}" for i in range(100)] + [f"math {i}" for i in range(200)]
    served = _route(server, "router-shift:spend=4", prompts).json()["data"]
    local = [controller.route(p, model="router-shift:spend=4") for p in prompts]
    # The same table, target and reference: the same decisions, the same moving trade-off.
    assert [d.upstream.name for d in local] == [r["routed_to"] for r in served]
    assert [d.policy.describe() for d in local] == [r["policy"] for r in served]
    assert local[-1].spend_realised_per_1k == pytest.approx(served[-1]["spend_realised_per_1k"])
    with pytest.raises(RoutingError, match="no strong/weak models"):
        controller.route("hi", model="router-shift@0.3")
    with pytest.raises(ValueError, match="both strong_model and weak_model"):
        Controller(routers=[HashRouter("x")], strong_model="a", upstream_table=str(path))
