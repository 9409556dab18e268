"""Serving with an upstream table only (no strong/weak flags), clear errors for a bad table, and
per-tenant calibration: a header picks a named calibration set fitted at start-up; an unknown
name is a 400 that leaves every other request and every controller as they were."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from routellm_jax.cli import build_parser
from routellm_jax.eval.policy import ModelPrice
from routellm_jax.serve.n_model import ModelUpstream, UpstreamTable
from routellm_jax.serve.server import ServeSettings, create_app
from routellm_jax.serve.tenants import (
    CALIBRATION_HEADER,
    CalibrationConfigError,
    PromptSet,
    parse_calibration_flag,
    read_prompt_file,
)
from routellm_jax.serve.testing import FakeUpstream, HashRouter, ServerThread
from routellm_jax.zoo.card import calibration_from_win_rates

NAMES = ["dear", "mid", "cheap"]


class _TableRouter(HashRouter):
    """A hash router with a model table (the name check real routers run on the upstream table)."""

    def model_indices(self, models):
        for m in models:
            if m not in NAMES:
                raise ValueError(f"router {self.name!r}: unknown model {m!r}")
        return [NAMES.index(m) for m in models]


def _run_cli(argv, monkeypatch):
    import uvicorn

    import routellm_jax.serve.client as client

    captured = {}
    monkeypatch.setattr(
        client, "load_routers", lambda names, precision=None: {n: _TableRouter(n) for n in names}
    )
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app))
    args = build_parser(argv).parse_args(argv)
    return args._run(args), captured


def _table_file(tmp_path: Path, upstreams: list[str], entries=None) -> Path:
    path = tmp_path / "upstreams.json"
    entries = entries or [
        {"name": n, "base_url": url, "price": p}
        for n, url, p in zip(NAMES, upstreams, [0.01, 0.003, 0.001])
    ]
    path.write_text(json.dumps({"upstreams": entries}))
    return path


def test_serve_with_an_upstream_table_and_no_pair_flags(monkeypatch, tmp_path, capsys) -> None:
    with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c:
        table = _table_file(tmp_path, [a.base_url, b.base_url, c.base_url])
        reference = tmp_path / "reference.txt"
        reference.write_text("\n".join(f"reference prompt {i}" for i in range(50)))
        argv = ["serve", "--router", "irt-test", "--upstreams", str(table)]
        code, captured = _run_cli(argv + ["--spend-reference", str(reference)], monkeypatch)
        assert code == 0
        with ServerThread(captured["app"]) as thread:
            health = httpx.get(f"{thread.url}/health").json()
            assert health["strong"] is None and len(health["n_models"]) == 3
            body = {
                "model": "router-irt-test:spend=5",
                "messages": [{"role": "user", "content": "hi"}],
            }
            reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-routellm-spend-target"] == "5.0"
            # Two-model names have nothing to route to: a 400 saying what to use instead.
            reply = httpx.post(
                f"{thread.url}/v1/chat/completions", json=dict(body, model="router-irt-test@0.3")
            )
            assert reply.status_code == 400 and ":spend=" in reply.json()["error"]["message"]
            models = httpx.get(f"{thread.url}/v1/models").json()["data"][0]["routellm"]
            assert "strong_model" not in models and "spend=" in models["n_model_usage"]


def test_pair_flags_all_or_none_and_table_errors_name_file_and_field(
    monkeypatch, tmp_path, capsys
) -> None:
    code, _ = _run_cli(["serve", "--router", "r"], monkeypatch)
    assert code == 2 and "--upstreams FILE" in capsys.readouterr().err
    code, _ = _run_cli(["serve", "--router", "r", "--strong-model", "big"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "need --weak-model, --strong-base-url, --weak-base-url" in err
    urls = ["http://127.0.0.1:9/v1"] * 3
    bad = [
        ({"name": "dear", "base_url": urls[0]}, "upstreams[0].price: missing"),
        ({"name": "dear", "base_url": urls[0], "price": "x"}, "upstreams[0].price: a price is"),
        ({"name": "dear", "base_url": "ftp://x", "price": 1}, "upstreams[0].base_url: must"),
        ({"name": "nope", "base_url": urls[0], "price": 1}, "upstreams[0].name: does not fit"),
    ]
    for entry, message in bad:
        rest = [{"name": n, "base_url": urls[0], "price": 0.1} for n in NAMES[1:]]
        table = _table_file(tmp_path, urls, [entry, *rest])
        code, _ = _run_cli(["serve", "--router", "r", "--upstreams", str(table)], monkeypatch)
        err = capsys.readouterr().err
        assert code == 2 and str(table) in err and message in err, (message, err)


def test_prompt_files_and_calibration_flags(tmp_path) -> None:
    jsonl = tmp_path / "tenant.jsonl"
    jsonl.write_text('{"prompt": "a"}\n\n{"prompt": "b"}\n')
    assert read_prompt_file(jsonl) == ("a", "b")
    jsonl.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(CalibrationConfigError, match=r"tenant.jsonl, line 2: needs .* 'prompt'"):
        read_prompt_file(jsonl)
    with pytest.raises(CalibrationConfigError, match="no such prompt file"):
        parse_calibration_flag(f"maths={tmp_path / 'missing.txt'}")
    text = tmp_path / "maths.txt"
    text.write_text("x\ny\n")
    assert parse_calibration_flag(f"maths={text}").prompts == ("x", "y")
    with pytest.raises(CalibrationConfigError, match="calibration name"):
        parse_calibration_flag(f"bad name={text}")


class _MathsRouter(HashRouter):
    """Hash win rates, pushed up for prompts starting with "math" (a tenant with harder traffic)."""

    def win_rate(self, prompts, strong=None, weak=None):
        base = super().win_rate(prompts, strong, weak)
        shifted = np.array([p.startswith("math") for p in prompts])
        return np.where(shifted, 0.5 + 0.5 * base, base)


def test_header_picks_the_tenants_calibration_and_unknown_names_harm_nothing(
    start_server,
) -> None:
    router = _MathsRouter("r")
    maths = PromptSet("maths", tuple(f"math tenant {i}" for i in range(400)), "test")
    server = start_server({"r": router}, calibrations=(maths,), share_control=False)
    url = server.url + "/v1/route"
    prompts = [f"math traffic {i}" for i in range(200)]
    default = httpx.post(url, json={"model": "router-r@0.3", "prompt": prompts}).json()["data"]
    tenant = httpx.post(
        url,
        json={"model": "router-r@0.3", "prompt": prompts},
        headers={CALIBRATION_HEADER: "maths"},
    ).json()["data"]
    # The tenant's threshold is the one the zoo's calibration code fits on its prompts.
    fitted = calibration_from_win_rates(
        router.win_rate(list(maths.prompts)), strong="s", weak="w", reference="maths"
    )
    expected = float(np.interp(0.3, fitted.shares, fitted.thresholds))
    assert tenant[0]["threshold"] == pytest.approx(expected)
    assert default[0]["threshold"] == pytest.approx(router.threshold_for_share(0.3))
    # On maths traffic the card's table sends far too many strong; the tenant's about 30%.
    share = lambda rows: np.mean([r["routed_to"] == "strong" for r in rows])  # noqa: E731
    assert share(default) > 0.5 and abs(share(tenant) - 0.3) < 0.1

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            calls = [
                client.post(
                    url,
                    json={"model": "router-r@0.3", "prompt": f"p{i}"},
                    headers={CALIBRATION_HEADER: "nope" if i % 2 else "maths"},
                )
                for i in range(20)
            ]
            return await asyncio.gather(*calls)

    replies = asyncio.run(burst())
    for i, reply in enumerate(replies):
        if i % 2:
            error = reply.json()["error"]
            assert reply.status_code == 400 and error["param"] == CALIBRATION_HEADER
            assert "unknown calibration 'nope'" in error["message"] and "maths" in error["message"]
        else:
            assert reply.status_code == 200 and reply.json()["threshold"] == pytest.approx(expected)


def test_tenant_prompts_are_the_spend_reference(start_server) -> None:
    table = UpstreamTable(
        tuple(
            ModelUpstream(n, n, "http://127.0.0.1:9/v1", ModelPrice(per_call=p))
            for n, p in zip(NAMES, [0.01, 0.003, 0.001])
        )
    )
    tenant = PromptSet("chat", tuple(f"chat {i}" for i in range(200)), "test")
    server = start_server({"r": HashRouter("r")}, upstream_table=table, calibrations=(tenant,))
    body = {"model": "router-r:spend=4", "prompt": "hello"}
    reply = httpx.post(server.url + "/v1/route", json=body)
    assert reply.status_code == 400 and CALIBRATION_HEADER in reply.json()["error"]["message"]
    reply = httpx.post(server.url + "/v1/route", json=body, headers={CALIBRATION_HEADER: "chat"})
    assert reply.status_code == 200 and reply.json()["spend_target_per_1k"] == 4.0
    assert 'calibration="chat"' in httpx.get(server.url + "/metrics").text


def test_settings_need_a_pair_or_a_table() -> None:
    with pytest.raises(ValueError, match="strong and weak upstreams, an upstream table"):
        ServeSettings()
    with pytest.raises(ValueError):
        create_app({"r": HashRouter("r")}, ServeSettings())


def test_spend_reference_defaults_to_the_cards_reference_set(monkeypatch, data_dir, caplog) -> None:
    from types import SimpleNamespace

    from routellm_jax.serve.cli import card_reference

    monkeypatch.setenv("ROUTELLM_JAX_DATA", str(data_dir))
    card = SimpleNamespace(
        calibration=SimpleNamespace(reference="alpaca_eval+arena_bench_v1: 805 + 300 prompts")
    )
    router = HashRouter("r")
    router.card = card
    reference = card_reference({"r": router})
    assert reference is not None and len(reference.prompts) > 1000
    assert reference.source.startswith("alpaca_eval+arena_bench_v1")
    assert card_reference({"r": HashRouter("r")}) is None
    assert "pass --spend-reference FILE" in caplog.text
