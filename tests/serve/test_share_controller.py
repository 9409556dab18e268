"""The online share controller: it starts from the calibration table, moves in bounded steps, keeps
the realised strong share on target when traffic shifts (a replayed MMLU -> GSM8K -> chat stream
scored by the bundled default router), and its drift gauge rises on the shift; in the server it
runs for router@share names only, exports its state in /metrics, and a flag turns it off."""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pytest

from routellm_jax.serve.budget import (
    PSI_WARNING,
    ControllerSettings,
    ReferenceTable,
    ShareController,
    population_stability_index,
)
from routellm_jax.serve.testing import HashRouter

TARGET = 0.3
# Warm-up: one controller window of decisions at the start of the stream.
WINDOW = 100
SEGMENT = 200  # prompts of each kind of traffic in the replay


def _uniform_table() -> ReferenceTable:
    shares = tuple(round(0.05 * i, 2) for i in range(1, 20))
    return ReferenceTable(shares, tuple(1.0 - s for s in shares), 1.0, 0.0)


def test_starts_at_the_calibrated_threshold_and_moves_in_bounded_steps() -> None:
    table = _uniform_table()
    settings = ControllerSettings(window=WINDOW, max_step=0.02)
    c = ShareController(TARGET, table, settings)
    assert c.threshold == pytest.approx(table.threshold(TARGET))
    rng = np.random.default_rng(0)
    for score in rng.uniform(size=300):
        c.decide(score)
    steady = c.threshold
    # A burst of 10 prompts that all score 1.0: each update changes the share the threshold sends
    # on the window by at most max_step, and the burst is 10 / WINDOW of the window.
    before = c._scores.copy()
    for _ in range(10):
        window_share = float(np.mean(c._scores >= c.threshold))
        c.decide(1.0)
        assert abs(float(np.mean(c._scores >= c.threshold)) - window_share) <= 0.02 + 1 / WINDOW
    assert np.sum(c._scores != before) == 10
    assert abs(c.threshold - steady) < 0.15  # one burst cannot swing it to the extremes
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ShareController(1.0, table)


def test_drift_gauge_and_warning(caplog) -> None:
    table = _uniform_table()
    assert population_stability_index(table.scores(1000), table) < 1e-6
    c = ShareController(TARGET, table, ControllerSettings(window=WINDOW))
    assert np.isnan(c.psi)  # too few live scores to compare
    rng = np.random.default_rng(1)
    with caplog.at_level(logging.WARNING, logger="routellm_jax.serve"):
        for score in rng.uniform(size=100):
            c.decide(score)
        calm = c.psi
        assert calm < PSI_WARNING and not caplog.records
        for score in rng.uniform(0.7, 1.0, size=100):
            c.decide(score)
    assert c.psi > PSI_WARNING > calm
    assert len(caplog.records) == 1 and "drifted from the calibration reference" in caplog.text


# ---- the replayed stream, scored by the bundled default router ------------------------------


@pytest.fixture(scope="module")
def shifted_stream(data_dir):
    """Win rates of 200 MMLU, then 200 GSM8K, then 200 chat (AlpacaEval) prompts, and the
    router's calibration reference."""
    import routellm_jax
    from routellm_jax.api import DEFAULT_ROUTER
    from routellm_jax.eval.benchmarks import gsm8k_benchmark, mmlu_benchmark

    rng = np.random.default_rng(0)
    mmlu = mmlu_benchmark(data_dir).prompts
    gsm8k = gsm8k_benchmark(data_dir).prompts
    with open(data_dir / "derived" / "alpaca_eval_prompts.jsonl", encoding="utf-8") as f:
        chat = [json.loads(line)["instruction"] for line in f if line.strip()]
    segments = [
        [str(p) for p in rng.choice(ps, SEGMENT, replace=False)] for ps in (mmlu, gsm8k, chat)
    ]
    router = routellm_jax.load(DEFAULT_ROUTER)
    scores = np.concatenate([router.win_rate(s).astype(np.float64) for s in segments])
    cal = router.calibration()
    top = float(np.nextafter(np.float32(cal.max_win_rate), np.float32(np.inf)))
    table = ReferenceTable(tuple(cal.shares), tuple(cal.thresholds), top, cal.min_win_rate)
    return scores, table


@pytest.mark.slow  # scores 600 real prompts with the MiniLM router
def test_controller_holds_the_share_where_the_fixed_threshold_drifts(shifted_stream) -> None:
    scores, table = shifted_stream
    controller = ShareController(TARGET, table, ControllerSettings(window=WINDOW))
    decided, psi = [], []
    for s in scores:
        decided.append(controller.decide(s))
        psi.append(controller.psi)
    decided = np.array(decided)
    fixed = scores >= table.threshold(TARGET)
    controlled_share = decided[WINDOW:].mean()
    fixed_share = fixed[WINDOW:].mean()
    segments = [slice(i * SEGMENT, (i + 1) * SEGMENT) for i in range(3)]
    print(
        f"after a warm-up of {WINDOW} prompts: controlled share {controlled_share:.3f}, fixed "
        f"threshold {fixed_share:.3f}; per segment (MMLU, GSM8K, chat) controlled "
        f"{[round(float(decided[s].mean()), 3) for s in segments]}, fixed "
        f"{[round(float(fixed[s].mean()), 3) for s in segments]}; PSI at each segment's end "
        f"{[round(psi[s.stop - 1], 3) for s in segments]}"
    )
    assert abs(controlled_share - TARGET) <= 0.03
    assert abs(fixed_share - TARGET) > 0.03
    # Each kind of traffic: the controller stays near the target where the fixed threshold
    # buys a very different share (GSM8K scores sit above the chat-calibrated threshold).
    assert max(abs(decided[s].mean() - TARGET) for s in segments) <= 0.1
    assert max(abs(fixed[s].mean() - TARGET) for s in segments) > 0.3
    # The drift gauge rises on the shift to GSM8K, then falls back on chat (the reference is
    # chat-like: AlpacaEval and Arena-Hard prompts).
    end_mmlu, end_gsm8k, end_chat = (psi[s.stop - 1] for s in segments)
    assert end_gsm8k > max(end_mmlu, PSI_WARNING) and end_chat < end_gsm8k


# ---- in the server ------------------------------------------------------------------------------


class _ShiftingRouter(HashRouter):
    """Hash scores, pushed up for prompts starting with "math" (a traffic shift)."""

    def win_rate(self, prompts, strong=None, weak=None):
        base = super().win_rate(prompts, strong, weak)
        shifted = np.array([p.startswith("math") for p in prompts])
        return np.where(shifted, 0.5 + 0.5 * base, base)


def _route(server, model: str, prompts: list[str]) -> list[dict]:
    reply = httpx.post(
        server.url + "/v1/route", json={"model": model, "prompt": prompts}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def _metrics(server) -> str:
    return httpx.get(server.url + "/metrics").text


def test_server_controls_share_names_and_exports_the_state(start_server) -> None:
    router = _ShiftingRouter("shift")
    server = start_server({"shift": router})
    calm = [f"chat {i}" for i in range(200)]
    shifted = [f"math {i}" for i in range(400)]
    first = _route(server, "router-shift@0.3", calm)
    assert first[0]["threshold"] == pytest.approx(router.threshold_for_share(0.3))
    rows = _route(server, "router-shift@0.3", shifted)
    realised = np.mean([r["routed_to"] == "strong" for r in rows[WINDOW:]])
    fixed = router.win_rate(shifted) >= router.threshold_for_share(0.3)
    assert abs(realised - 0.3) <= 0.05 and fixed[WINDOW:].mean() > 0.5
    text = _metrics(server)
    labels = 'calibration="",router="shift",target="0.3"'
    assert f"routellm_share_target{{{labels}}} 0.3" in text
    for name in ("routellm_share_realised", "routellm_share_threshold", "routellm_score_psi"):
        assert f"{name}{{{labels}}}" in text
    psi = float(text.split(f"routellm_score_psi{{{labels}}} ")[1].split()[0])
    assert psi > PSI_WARNING
    # Fixed thresholds are not controlled: the threshold stays as asked.
    rows = _route(server, "router-shift-0.6", shifted[:50])
    assert {r["threshold"] for r in rows} == {0.6}


def test_flag_turns_the_controller_off(start_server) -> None:
    router = _ShiftingRouter("shift")
    server = start_server({"shift": router}, share_control=False)
    rows = _route(server, "router-shift@0.3", [f"math {i}" for i in range(200)])
    assert {r["threshold"] for r in rows} == {router.threshold_for_share(0.3)}
    assert "routellm_share_realised{" not in _metrics(server)


def test_controllers_are_bounded_however_many_shares_clients_name(start_server) -> None:
    from routellm_jax.serve.server import MAX_SHARE_CONTROLLERS

    router = HashRouter("h")
    server = start_server({"h": router})
    shares = [round(0.1 + 0.001 * i, 3) for i in range(MAX_SHARE_CONTROLLERS + 5)]
    for share in shares:
        _route(server, f"router-h@{share}", ["a prompt", "another"])
    text = _metrics(server)
    assert text.count("routellm_share_target{") == MAX_SHARE_CONTROLLERS
    # Past the bound a share name still routes, on the calibrated threshold.
    rows = _route(server, f"router-h@{shares[-1]}", ["x", "y", "z"])
    assert {r["threshold"] for r in rows} == {router.threshold_for_share(shares[-1])}
