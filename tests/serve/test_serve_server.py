"""The routing server end to end: our server and fake upstreams are real HTTP servers on loopback,
and requests come from the official ``openai`` client (or httpx where raw HTTP is the point)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
import numpy as np
import openai
import pytest

from routellm_jax.serve.routing import RoutingError
from routellm_jax.serve.testing import HashRouter

USER = "user"


def _client(server, **kw) -> openai.OpenAI:
    # max_retries=0: the server's own retries are under test, not the SDK's.
    return openai.OpenAI(base_url=server.url + "/v1", api_key="client-key", max_retries=0, **kw)


def _msgs(text: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": USER, "content": text}]


def _metric(server, name: str, **labels) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    text = httpx.get(server.url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            got = head[len(name) :].strip("{}")
            if ",".join(sorted(got.split(","))) == want:
                return float(value)
    return 0.0


def _prompts_split_at(router: HashRouter, threshold: float) -> tuple[str, str]:
    """A prompt the router sends to the strong model and one it sends to the weak model."""
    prompts = [f"question {i}" for i in range(50)]
    decisions = router.route(prompts, threshold=threshold)
    return prompts[int(np.argmax(decisions))], prompts[int(np.argmin(decisions))]


def test_both_routes_taken_and_routed_model_named(start_server, fresh_upstreams, strong_key):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router})
    strong_up, weak_up = fresh_upstreams
    to_strong, to_weak = _prompts_split_at(router, 0.5)
    client = _client(server)

    reply = client.chat.completions.create(model="router-mf-minilm-0.5", messages=_msgs(to_strong))
    assert reply.model == "big-model"  # the upstream said "big-model-upstream"
    assert reply.choices[0].message.content == f"big-model answers: {to_strong}"
    assert reply.routellm["routed_to"] == "strong" and reply.routellm["fallback"] is False
    assert reply.routellm["win_rate"] == pytest.approx(router.win_rate([to_strong])[0])

    raw = client.chat.completions.with_raw_response.create(
        model="router-mf-minilm-0.5", messages=_msgs(to_weak), temperature=0.2, max_tokens=7
    )
    reply = raw.parse()
    assert reply.model == "small-model"
    assert raw.headers["x-routellm-routed-to"] == "weak"
    assert raw.headers["x-routellm-router"] == "mf-minilm"
    assert raw.headers["server-timing"].startswith("router;dur=")

    # Each upstream got the request with its own model name and the caller's parameters; only
    # the strong one holds a key, sent as a bearer token.
    (strong_body, strong_auth), (weak_body, weak_auth) = (
        strong_up.requests[-1],
        weak_up.requests[-1],
    )
    assert strong_body["model"] == "big-model" and weak_body["model"] == "small-model"
    assert weak_body["temperature"] == 0.2 and weak_body["max_tokens"] == 7
    assert strong_auth == f"Bearer {strong_key}" and weak_auth is None

    # Thresholds 0 and 1 pin the decision.
    assert (
        client.chat.completions.create(model="router-mf-minilm-0", messages=_msgs(to_weak)).model
        == "big-model"
    )
    assert (
        client.chat.completions.create(model="router-mf-minilm-1", messages=_msgs(to_strong)).model
        == "small-model"
    )


def test_streaming_relays_chunks_with_routed_model(start_server):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router})
    to_strong, to_weak = _prompts_split_at(router, 0.5)
    client = _client(server)
    for prompt, model in ((to_strong, "big-model"), (to_weak, "small-model")):
        chunks = list(
            client.chat.completions.create(
                model="router-mf-minilm-0.5", messages=_msgs(prompt), stream=True
            )
        )
        assert {c.model for c in chunks} == {model}
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == f"{model} answers: {prompt}"
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_share_model_names_use_the_calibration_table(start_server):
    router = HashRouter("mf-minilm")
    # Controller off: the calibrated threshold as it is (test_share_controller.py: on).
    server = start_server({"mf-minilm": router}, share_control=False)
    client = _client(server)
    threshold = router.threshold_for_share(0.3)
    prompts = [f"share prompt {i}" for i in range(40)]
    expected = router.route(prompts, threshold=threshold)
    for prompt, strong in zip(prompts, expected):
        raw = client.chat.completions.with_raw_response.create(
            model="router-mf-minilm@0.3", messages=_msgs(prompt)
        )
        assert float(raw.headers["x-routellm-threshold"]) == threshold
        assert raw.parse().model == ("big-model" if strong else "small-model")


def test_several_routers_with_overlapping_names(start_server):
    short, long = HashRouter("mf", seed=1), HashRouter("mf-minilm", seed=2)
    server = start_server({"mf": short, "mf-minilm": long})
    prompts = [f"p{i}" for i in range(20)]
    body = {"model": "router-mf-0.5", "prompt": prompts}
    got = httpx.post(server.url + "/v1/route", json=body).json()["data"]
    assert [d["win_rate"] for d in got] == pytest.approx(short.win_rate(prompts).tolist())
    body["model"] = "router-mf-minilm-0.5"
    got = httpx.post(server.url + "/v1/route", json=body).json()["data"]
    assert [d["win_rate"] for d in got] == pytest.approx(long.win_rate(prompts).tolist())


def test_route_endpoint_models_and_health(start_server, strong_key):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router})
    to_strong, _ = _prompts_split_at(router, 0.5)
    out = httpx.post(
        server.url + "/v1/route",
        json={"model": "router-mf-minilm-0.5", "messages": _msgs(to_strong)},
    ).json()
    assert out["routed_to"] == "strong" and out["model"] == "big-model"
    assert out["win_rate"] == pytest.approx(router.win_rate([to_strong])[0])
    assert out["threshold"] == 0.5

    models = _client(server).models.list()
    assert [m.id for m in models.data] == ["router-mf-minilm"]
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["routers"] == ["mf-minilm"]
    assert strong_key not in str(health)


def test_route_on_conversation(start_server):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router}, route_on="conversation")
    messages = _msgs("the question")
    out = httpx.post(
        server.url + "/v1/route", json={"model": "router-mf-minilm-0.5", "messages": messages}
    ).json()
    assert out["win_rate"] == pytest.approx(router.win_rate(["be brief\n\nthe question"])[0])


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"model": "router-mf-minilm-0.5"}', 400, "'messages' must be a non-empty list"),
        (b'{"model": "router-mf-minilm-0.5", "messages": [{"content": "x"}]}', 400, "role"),
        (
            b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "user", "content": "x"}], '
            b'"stream": "yes"}',
            400,
            "'stream' must be true or false",
        ),
        (
            b'{"model": "router-other-0.5", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "unknown router",
        ),
        (
            b'{"model": "router-mf-minilm-1.5", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "out of range",
        ),
        (
            b'{"model": "router-mf-minilm@-0.2", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "out of range",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "not a router model",
        ),
        (  # Python reads NaN; the upstream request could not be encoded (a 500 before)
            b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": NaN}',
            400,
            "NaN is not a JSON value",
        ),
        (b"\xff\xfe{}", 400, "not valid UTF-8"),
    ],
)
def test_bad_requests_get_openai_style_400(start_server, fresh_upstreams, body, status, reason):
    server = start_server()
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert reason in error["message"] and error["type"] == "invalid_request_error"
    assert not fresh_upstreams[0].requests and not fresh_upstreams[1].requests


def test_openai_client_sees_bad_request_error(start_server):
    server = start_server()
    with pytest.raises(openai.BadRequestError, match="unknown router"):
        _client(server).chat.completions.create(model="router-x-0.5", messages=_msgs("hi"))
    response = httpx.post(server.url + "/v1/route", json={"model": "router-mf-minilm-0.5"})
    assert response.status_code == 400 and "messages" in response.json()["error"]["message"]
    assert httpx.get(server.url + "/nowhere").json()["error"]["message"] == "Not Found"


def test_retry_then_success_without_fallback(start_server, fresh_upstreams):
    strong_up, weak_up = fresh_upstreams
    server = start_server()
    strong_up.fail_next = 1
    reply = _client(server).chat.completions.create(model="router-mf-minilm-0", messages=_msgs("q"))
    assert reply.model == "big-model" and reply.routellm["fallback"] is False
    assert len(strong_up.requests) == 2 and not weak_up.requests
    assert _metric(server, "routellm_upstream_errors_total", role="strong", kind="http_500") == 1


def test_fallback_to_the_other_model_on_errors(start_server, fresh_upstreams):
    strong_up, weak_up = fresh_upstreams
    server = start_server(fallback="other", retries=1)
    strong_up.mode = "error"
    raw = _client(server).chat.completions.with_raw_response.create(
        model="router-mf-minilm-0", messages=_msgs("needs the strong model")
    )
    reply = raw.parse()
    assert reply.model == "small-model"
    assert reply.routellm["routed_to"] == "strong" and reply.routellm["answered_by"] == "weak"
    assert raw.headers["x-routellm-fallback"] == "strong->weak"
    assert len(strong_up.requests) == 2  # one try + one retry
    assert _metric(server, "routellm_fallbacks_total", from_role="strong", to_role="weak") == 1
    # The decision is still counted for the routed model; the answer for the one that served it.
    assert (
        _metric(
            server,
            "routellm_routed_total",
            router="mf-minilm",
            model="big-model",
            role="strong",
            endpoint="chat",
        )
        == 1
    )
    assert (
        _metric(
            server,
            "routellm_upstream_responses_total",
            model="small-model",
            role="weak",
            status="200",
        )
        == 1
    )

    # Streams fall back too (the failure shows before any byte is relayed).
    chunks = list(
        _client(server).chat.completions.create(
            model="router-mf-minilm-0", messages=_msgs("stream me"), stream=True
        )
    )
    assert {c.model for c in chunks} == {"small-model"}


def test_timeout_falls_back(start_server, fresh_upstreams):
    strong_up, _ = fresh_upstreams
    server = start_server(fallback="other", upstream_timeout_s=0.2, retries=1)
    strong_up.mode = "hang"
    reply = _client(server).chat.completions.create(model="router-mf-minilm-0", messages=_msgs("q"))
    # Had the 0.2 s timeout not fired, the strong upstream would have answered after its 1 s hang.
    assert reply.model == "small-model"
    assert _metric(server, "routellm_upstream_errors_total", role="strong", kind="timeout") == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_502_names_the_upstream_and_never_the_key(
    start_server, fresh_upstreams, caplog, strong_key
):
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    server = start_server(fallback="error", strong_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(openai.APIStatusError) as info:
        _client(server).chat.completions.create(model="router-mf-minilm-0", messages=_msgs("q"))
    assert info.value.status_code == 502
    message = info.value.response.json()["error"]["message"]
    assert f"strong upstream 'big-model' at 127.0.0.1:{port}" in message
    assert "connection error" in message and "2 attempt(s)" in message
    assert not fresh_upstreams[1].requests  # fallback=error: the weak model is not asked

    # Fallback allowed but both fail: 502 naming both.
    fresh_upstreams[1].mode = "error"
    server2 = start_server(fallback="other", strong_url=f"http://127.0.0.1:{port}/v1")
    response = httpx.post(
        server2.url + "/v1/chat/completions",
        json={"model": "router-mf-minilm-0", "messages": _msgs("q")},
    )
    assert response.status_code == 502
    assert "strong upstream" in response.text and "weak upstream" in response.text

    # An upstream 4xx is passed on (not retried), with the key it echoed scrubbed.
    fresh_upstreams[0].mode = "bad_request"
    fresh_upstreams[0].requests.clear()
    server3 = start_server(fallback="other")
    response = httpx.post(
        server3.url + "/v1/chat/completions",
        json={"model": "router-mf-minilm-0", "messages": _msgs("q")},
    )
    assert response.status_code == 400 and "fake upstream rejects this" in response.text
    assert "***" in response.text and len(fresh_upstreams[0].requests) == 1

    for text in (info.value.response.text, response.text, caplog.text):
        assert strong_key not in text
    assert "127.0.0.1" in caplog.text  # the logs did record the failures


def test_broken_stream_surfaces_as_an_api_error(start_server, fresh_upstreams):
    fresh_upstreams[0].mode = "break_stream"
    server = start_server()
    stream = _client(server).chat.completions.create(
        model="router-mf-minilm-0", messages=_msgs("q"), stream=True
    )
    with pytest.raises(openai.APIError, match="broke off the stream"):
        list(stream)
    assert _metric(server, "routellm_upstream_errors_total", role="strong", kind="stream") == 1


def test_router_failure_is_a_500_with_reason(start_server):
    class Broken(HashRouter):
        def win_rate(self, prompts, strong=None, weak=None):
            raise RuntimeError("checkpoint missing")

    server = start_server({"mf-minilm": Broken("mf-minilm")})
    response = httpx.post(
        server.url + "/v1/route", json={"model": "router-mf-minilm-0.5", "prompt": "x"}
    )
    assert response.status_code == 500
    assert "router 'mf-minilm' failed: RuntimeError" in response.json()["error"]["message"]


def test_create_app_rejects_non_routers():
    from routellm_jax.serve.server import ServeSettings, Upstream, create_app

    settings = ServeSettings(
        Upstream("strong", "a", "http://127.0.0.1:1/v1"),
        Upstream("weak", "b", "http://127.0.0.1:2/v1"),
    )
    with pytest.raises(TypeError, match="'x' lacks"):
        create_app({"x": object()}, settings)
    with pytest.raises(ValueError, match="fallback"):
        ServeSettings(settings.strong, settings.weak, fallback="maybe")
    assert issubclass(RoutingError, ValueError)


def test_load_run_counts_match_router_decisions(start_server):
    """2,000 chat requests at 64 concurrent: no errors, per-model counts = the router's decisions."""
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router}, batch_window_ms=2.0, max_batch=64)
    n, concurrency, threshold = 2000, 64, 0.4
    prompts = [f"load prompt {i}" for i in range(n)]

    async def run() -> list[str]:
        sem = asyncio.Semaphore(concurrency)
        # Several small clients: one httpx pool of 64 connections spends its time scanning them.
        shards, per_shard = 8, concurrency // 8
        clients = [
            httpx.AsyncClient(
                base_url=server.url, limits=httpx.Limits(max_connections=per_shard), timeout=30
            )
            for _ in range(shards)
        ]

        async def one(i: int, prompt: str) -> str:
            async with sem:
                r = await clients[i % shards].post(
                    "/v1/chat/completions",
                    json={"model": f"router-mf-minilm-{threshold}", "messages": _msgs(prompt)},
                )
                r.raise_for_status()
                return r.json()["model"]

        try:
            return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
        finally:
            for client in clients:
                await client.aclose()

    start = time.perf_counter()
    models = asyncio.run(run())
    elapsed = time.perf_counter() - start
    expected = router.route(prompts, threshold=threshold)
    assert models == ["big-model" if s else "small-model" for s in expected]
    labels = dict(router="mf-minilm", endpoint="chat")
    strong = _metric(server, "routellm_routed_total", model="big-model", role="strong", **labels)
    weak = _metric(server, "routellm_routed_total", model="small-model", role="weak", **labels)
    assert (strong, weak) == (int(expected.sum()), n - int(expected.sum()))
    assert (
        _metric(server, "routellm_http_requests_total", path="/v1/chat/completions", status="200")
        == n
    )
    assert max(router.batch_sizes) > 1  # concurrent requests shared forward passes
    print(f"load run: {n / elapsed:.0f} req/s, batches up to {max(router.batch_sizes)}")


def test_event_loop_stays_responsive_during_a_slow_forward_pass(start_server):
    slow = HashRouter("mf-minilm", delay_s=1.5)
    server = start_server({"mf-minilm": slow})
    done = {}

    def route() -> None:
        done["r"] = httpx.post(
            server.url + "/v1/route", json={"model": "router-mf-minilm-0.5", "prompt": "x"}
        )

    worker = threading.Thread(target=route)
    worker.start()
    while not slow.batch_sizes:  # the forward pass has started
        time.sleep(0.01)
    assert httpx.get(server.url + "/health").status_code == 200
    assert worker.is_alive()  # /health answered while the forward pass was still running
    worker.join()
    assert done["r"].status_code == 200
