"""The server routing among three fake upstreams by an N-model policy: the chosen upstream is the
policy's choice on the router's quality row, headers say which and why, a failing upstream falls
back to the policy's next choice, and the upstream table's errors name the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from routellm_jax.eval.policy import ModelPrice, Policy, choose
from routellm_jax.serve.n_model import (
    ModelUpstream,
    UpstreamTable,
    UpstreamTableError,
    parse_n_model,
    read_upstream_table,
)
from routellm_jax.serve.routing import RoutingError
from routellm_jax.serve.server import ServeSettings, Upstream, create_app
from routellm_jax.serve.testing import FakeUpstream, HashRouter, ServerThread

NAMES = ["gpt-4", "claude", "mixtral"]
PRICES = [ModelPrice(per_call=0.03), ModelPrice(per_call=0.01), ModelPrice(per_call=0.001)]
KEY = "sk-n-model-SECRET-1234"


@pytest.fixture(scope="module")
def three():
    with FakeUpstream(hang_s=1.0) as a, FakeUpstream(hang_s=1.0) as b, FakeUpstream() as c:
        yield [a, b, c]


@pytest.fixture
def server(three):
    for up in three:
        up.reset()
    table = UpstreamTable(
        tuple(
            ModelUpstream(n, f"{n}-api", up.base_url, p, KEY if n == "gpt-4" else None)
            for n, up, p in zip(NAMES, three, PRICES)
        )
    )
    router = HashRouter("irt-test")
    settings = ServeSettings(
        Upstream("strong", "big", three[0].base_url),
        Upstream("weak", "small", three[2].base_url),
        upstream_table=table,
        retries=0,
    )
    thread = ServerThread(create_app({"irt-test": router, "pair": _PairOnly()}, settings)).start()
    yield thread, router, three
    thread.stop()


class _PairOnly(HashRouter):
    model_quality = None  # a pair-only router: no per-model scores


def _chat(thread, model: str, text: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)


def _expected(router: HashRouter, text: str, policy: Policy) -> tuple[int, float]:
    quality = router.model_quality([text], NAMES)
    cost = np.array([[p.per_call for p in PRICES]])
    a = choose(quality, cost, policy)
    return int(a.model_index[0]), float(a.quality[0])


def test_routes_among_three_upstreams_by_the_policy(server) -> None:
    thread, router, ups = server
    prompts = [f"question number {i}" for i in range(12)]
    seen = set()
    for model, policy in [
        ("router-irt-test:floor=0.5", Policy("quality_floor", 0.5)),
        ("router-irt-test:budget=0.015", Policy("budget", 0.015)),
        ("router-irt-test:tradeoff=0.5", Policy("tradeoff", 0.5)),
    ]:
        for text in prompts:
            for up in ups:
                up.reset()
            reply = _chat(thread, model, text)
            assert reply.status_code == 200, reply.text
            j, quality = _expected(router, text, policy)
            seen.add(j)
            h = reply.headers
            assert (
                h["x-routellm-routed-to"] == NAMES[j] and h["x-routellm-model"] == f"{NAMES[j]}-api"
            )
            assert float(h["x-routellm-expected-quality"]) == pytest.approx(quality)
            assert float(h["x-routellm-cost"]) == pytest.approx(PRICES[j].per_call)
            assert h["x-routellm-policy"] == policy.describe() and h["x-routellm-reason"]
            data = reply.json()
            assert data["model"] == f"{NAMES[j]}-api"
            assert data["choices"][0]["message"]["content"] == f"{NAMES[j]}-api answers: {text}"
            assert data["routellm"]["routed_to"] == NAMES[j]
            assert set(data["routellm"]["candidates"]) == set(NAMES)
            # Only the chosen upstream was called, with its own model name.
            called = [i for i, up in enumerate(ups) if up.requests]
            assert called == [j] and ups[j].requests[-1][0]["model"] == f"{NAMES[j]}-api"
            assert ups[0].requests[-1][1] == f"Bearer {KEY}" if j == 0 else True
    assert seen == {0, 1, 2}  # every upstream chosen somewhere: the test exercises all three


def test_route_endpoint_and_fallback_to_the_policys_next_choice(server) -> None:
    thread, router, ups = server
    text = next(
        t
        for t in (f"prompt {i}" for i in range(200))
        if _expected(router, t, Policy("tradeoff", 0.0))[0] == 0
    )
    reply = httpx.post(
        f"{thread.url}/v1/route",
        json={"model": "router-irt-test:tradeoff=0", "prompt": [text, "other"]},
        timeout=10,
    )
    rows = reply.json()["data"]
    assert rows[0]["routed_to"] == "gpt-4" and rows[0]["reason"].startswith("highest expected")
    ups[0].mode = "error"
    reply = _chat(thread, "router-irt-test:tradeoff=0", text)
    assert reply.status_code == 200
    quality = router.model_quality([text], NAMES)[0]
    second = NAMES[1] if quality[1] >= quality[2] else NAMES[2]
    assert reply.headers["x-routellm-fallback"] == f"gpt-4->{second}"
    assert reply.json()["routellm"]["answered_by"] == second
    assert KEY not in reply.text


def test_bad_policy_names_and_pair_only_routers_get_400(server) -> None:
    thread, _, _ = server
    cases = {
        "router-irt-test:cheap=1": "use router-<name>:<policy>=<value>",
        "router-irt-test:floor=2": "floor lies in [0, 1]",
        "router-irt-test:budget=x": "could not convert",
        "router-nope:budget=1": "unknown router 'nope'",
        "router-pair:budget=1": "scores one strong/weak pair only",
    }
    for model, message in cases.items():
        reply = _chat(thread, model, "hi")
        assert reply.status_code == 400 and message in reply.json()["error"]["message"], model


def test_parse_n_model_leaves_two_model_names_alone() -> None:
    assert parse_n_model("router-a-0.5", ["a"]) is None
    assert parse_n_model("router-a@0.3", ["a"]) is None
    with pytest.raises(RoutingError, match="unknown router"):
        parse_n_model("router-b:budget=1", ["a"])


def test_upstream_table_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "upstreams.json"
    good = {
        "upstreams": [
            {"name": "a", "base_url": "http://h:1/v1", "api_key_env": "A_KEY", "price": 0.01},
            {"name": "b", "base_url": "http://h:2/v1", "price": {"input_per_1k": 0.1}},
        ]
    }
    path.write_text(json.dumps(good))
    table = read_upstream_table(path, {"A_KEY": "sk-secret-A"})
    assert table.names == ["a", "b"] and table.upstreams[0].api_key == "sk-secret-A"
    assert "sk-secret-A" not in repr(table)
    cases = [
        ({}, "A_KEY is not set", {}),
        ({"upstreams": good["upstreams"][:1]}, "at least two models", {"A_KEY": "sk-secret-A"}),
        (
            {"upstreams": [dict(good["upstreams"][0], base_url="h:1"), good["upstreams"][1]]},
            "upstreams[0].base_url: must start with http",
            {"A_KEY": "sk-secret-A"},
        ),
        (
            {"upstreams": [good["upstreams"][0], dict(good["upstreams"][1], price={"x": 1})]},
            "upstreams[1].price: unknown field(s) ['x']",
            {"A_KEY": "sk-secret-A"},
        ),
        (
            {"upstreams": [good["upstreams"][0], dict(good["upstreams"][1], name="a")]},
            "names repeat",
            {"A_KEY": "sk-secret-A"},
        ),
    ]
    for data, message, env in cases:
        path.write_text(json.dumps(data or good))
        with pytest.raises(UpstreamTableError) as err:
            read_upstream_table(path, env)
        assert str(path) in str(err.value) and message in str(err.value)


def test_serve_cli_reads_the_upstream_table(monkeypatch, tmp_path: Path, capsys) -> None:
    import uvicorn

    import routellm_jax.serve.client as client
    from routellm_jax.cli import build_parser

    captured = {}
    monkeypatch.setattr(
        client, "load_routers", lambda names, precision=None: {n: HashRouter(n) for n in names}
    )
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app))
    table = tmp_path / "upstreams.json"
    entries = [
        {"name": n, "base_url": f"http://127.0.0.1:{9000 + i}/v1", "price": p.per_call}
        for i, (n, p) in enumerate(zip(NAMES, PRICES))
    ]
    argv = [
        "serve",
        "--router",
        "irt-test",
        "--strong-model",
        "big",
        "--weak-model",
        "small",
        "--strong-base-url",
        "http://127.0.0.1:9001/v1",
        "--weak-base-url",
        "http://127.0.0.1:9002/v1",
        "--upstreams",
        str(table),
    ]
    table.write_text(json.dumps({"upstreams": entries}))
    args = build_parser(argv).parse_args(argv)
    assert args._run(args) == 0
    with ServerThread(captured["app"]) as thread:
        health = httpx.get(f"{thread.url}/health").json()
    assert [h.split("'")[1] for h in health["n_models"]] == NAMES
    table.write_text(json.dumps({"upstreams": entries[:1]}))
    assert args._run(args) == 2
    assert (
        f"--upstreams {table}: 'upstreams' must be a list of at least two"
        in capsys.readouterr().err
    )


def test_controller_client_routes_among_the_table_and_controls_shares(three) -> None:
    import openai

    from routellm_jax.serve.client import Controller

    for up in three:
        up.reset()
    table = UpstreamTable(
        tuple(
            ModelUpstream(n, f"{n}-api", up.base_url, p) for n, up, p in zip(NAMES, three, PRICES)
        )
    )
    router = HashRouter("irt-test")
    clients = {
        n: openai.OpenAI(base_url=up.base_url, api_key="k", max_retries=0)
        for n, up in zip(NAMES, three)
    }
    controller = Controller(
        routers=[router],
        strong_model="big",
        weak_model="small",
        strong_client=clients["gpt-4"],
        weak_client=clients["mixtral"],
        upstream_table=table,
        table_clients=clients,
    )
    policy = Policy("budget", 0.015)
    for i in range(8):
        text = f"controller prompt {i}"
        j, quality = _expected(router, text, policy)
        decision = controller.route(text, model="router-irt-test:budget=0.015")
        assert decision.upstream.name == NAMES[j] and decision.quality == pytest.approx(quality)
        reply = controller.chat.completions.create(
            model="router-irt-test:budget=0.015", messages=[{"role": "user", "content": text}]
        )
        assert reply.model == f"{NAMES[j]}-api"
    # @share names run the online controller (its threshold moves with the traffic) unless off.
    first = controller.route("share 0", model="router-irt-test@0.3").threshold
    assert first == pytest.approx(router.threshold_for_share(0.3))
    moved = {
        controller.route(f"share {i}", model="router-irt-test@0.3").threshold for i in range(50)
    }
    assert len(moved) > 1
    fixed = Controller(routers=[router], strong_model="b", weak_model="s", share_control=False)
    assert {fixed.route(f"s {i}", model="router-irt-test@0.3").threshold for i in range(20)} == {
        router.threshold_for_share(0.3)
    }
    with pytest.raises(RoutingError, match="no upstream_table"):
        fixed.route("hi", model="router-irt-test:budget=1")


def test_a_table_model_the_router_does_not_know_is_refused_at_start(three) -> None:
    class Named(HashRouter):
        def model_indices(self, models):
            if "claude" in models:
                raise ValueError("router 'named': unknown model 'claude'; closest: ['claude-2.1']")
            return list(range(len(models)))

    table = UpstreamTable(
        tuple(ModelUpstream(n, n, up.base_url, p) for n, up, p in zip(NAMES, three, PRICES))
    )
    settings = ServeSettings(
        Upstream("strong", "big", three[0].base_url),
        Upstream("weak", "small", three[2].base_url),
        upstream_table=table,
    )
    with pytest.raises(ValueError, match=r"does not fit router 'named'.*closest: \['claude-2.1'\]"):
        create_app({"named": Named("named")}, settings)
