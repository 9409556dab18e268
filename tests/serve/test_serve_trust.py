"""The server's trust boundary, attack by attack: text that is not valid Unicode, one request
failing its batch, clients without a key, oversized bodies, token and queue limits, streams whose
client left, and upstream errors that echo a key in escaped form."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import httpx
import openai
import pytest

from routellm_jax.serve.server import _Redactor
from routellm_jax.serve.testing import HashRouter

CHAT = "/v1/chat/completions"
MODEL = "router-mf-minilm-0.5"


def _msgs(text: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


# JSON text with an unpaired UTF-16 surrogate: json.loads turns it into a str no UTF-8 encoder or
# tokenizer accepts ("hi \ud800" in the request body).
BAD_CHAT = (
    b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "system", "content": "be brief"}, '
    b'{"role": "user", "content": "hi \\ud800"}]}'
)


def _post_raw(server, path: str, body: bytes, **kw) -> httpx.Response:
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    return httpx.post(server.url + path, content=body, headers=headers, **kw)


def _metric(server, name: str, having: str = "") -> float:
    """The first sample of ``name`` in /metrics whose labels include ``having`` (0 if none)."""
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + "{") and having in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- text that is not valid Unicode ---------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, field",
    [
        (CHAT, BAD_CHAT, "messages[1].content"),
        (
            CHAT,
            b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "user", "content": '
            b'[{"type": "text", "text": "ok"}, {"type": "text", "text": "\\udfff x"}]}]}',
            "messages[0].content[1].text",
        ),
        (  # not the routed message, but forwarded upstream all the same
            CHAT,
            b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "system", "content": '
            b'"\\ud83d"}, {"role": "user", "content": "hi"}]}',
            "messages[0].content",
        ),
        (
            "/v1/route",
            b'{"model": "router-mf-minilm-0.5", "prompt": ["a", "b", "c", "d \\udc00"]}',
            "prompt[3]",
        ),
    ],
)
def test_invalid_unicode_is_a_400_naming_the_field(
    start_server, fresh_upstreams, path, body, field
):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router})
    response = _post_raw(server, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}: not valid Unicode")
    assert error["type"] == "invalid_request_error"
    assert not router.batch_sizes  # refused before the router saw it
    assert not fresh_upstreams[0].requests and not fresh_upstreams[1].requests


def test_a_valid_surrogate_pair_is_fine(start_server):
    server = start_server()
    body = (
        b'{"model": "router-mf-minilm-0.5", "messages": [{"role": "user", '
        b'"content": "\\ud83d\\ude00"}]}'
    )
    response = _post_raw(server, CHAT, body)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_surrogate_requests_fail_no_innocent_request(start_server):
    """5 rounds of 30 innocent requests plus one with "hi \\ud800", all concurrent: the bad one
    gets its 400, none of the 150 innocent ones fails (before: 500s across the shared batches)."""
    router = HashRouter("mf-minilm", delay_s=0.002)  # a forward pass: batches fill meanwhile
    server = start_server({"mf-minilm": router}, batch_window_ms=5.0)

    async def one_round(client: httpx.AsyncClient, r: int) -> tuple[list[int], int]:
        innocent = [
            client.post(CHAT, json={"model": MODEL, "messages": _msgs(f"round {r} q {i}")})
            for i in range(30)
        ]
        bad = client.post(CHAT, content=BAD_CHAT, headers={"content-type": "application/json"})
        *good, bad_response = await asyncio.gather(*innocent, bad)
        return [g.status_code for g in good], bad_response.status_code

    async def main():
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            return [await one_round(client, r) for r in range(5)]

    rounds = asyncio.run(main())
    innocent_failures = sum(code != 200 for good, _ in rounds for code in good)
    assert innocent_failures == 0
    assert [bad for _, bad in rounds] == [400] * 5
    assert max(router.batch_sizes) > 1  # the innocent requests did share batches


def test_a_prompt_the_router_fails_on_fails_only_its_own_request(start_server):
    """Whatever gets past the boundary and breaks a batch (here a router that cannot score one
    prompt) fails that request alone: the batch is rescored prompt by prompt."""

    class Fussy(HashRouter):
        failed_batches: list[int] = []

        def win_rate(self, prompts, strong=None, weak=None):
            time.sleep(0.002)
            if any("POISON" in p for p in prompts):
                self.failed_batches.append(len(prompts))
                raise TypeError("cannot tokenize")
            return super().win_rate(prompts, strong, weak)

    router = Fussy("mf-minilm")
    # A window far longer than the 21 requests take to arrive: the poisoned prompt must share a
    # batch (on a loaded machine a 5 ms window could close before it came, and it ran alone).
    server = start_server({"mf-minilm": router}, batch_window_ms=50.0)
    prompts = [f"question {i}" for i in range(20)] + ["POISON pill"]

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/route", json={"model": MODEL, "prompt": p}) for p in prompts)
            )

    responses = asyncio.run(main())
    codes = [r.status_code for r in responses]
    assert codes == [200] * 20 + [500]
    assert "router 'mf-minilm' failed: TypeError" in responses[-1].json()["error"]["message"]
    assert max(router.failed_batches) > 1  # it did poison a shared batch first


def test_a_prompt_the_router_refuses_is_a_400(start_server):
    """A router's own PromptError (text it cannot read) is the client's fault, not a 500."""
    from routellm_jax.api import PromptError

    class Strict(HashRouter):
        def win_rate(self, prompts, strong=None, weak=None):
            for i, p in enumerate(prompts):
                if "\x00" in p:
                    raise PromptError(f"prompts[{i}]: holds a NUL character", i)
            return super().win_rate(prompts, strong, weak)

    server = start_server({"mf-minilm": Strict("mf-minilm")})
    response = httpx.post(server.url + CHAT, json={"model": MODEL, "messages": _msgs("a\x00b")})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and "NUL character" in error["message"]


# --- client authentication ------------------------------------------------------------------


def test_client_keys_are_required_and_never_shown(start_server, caplog):
    caplog.set_level(logging.DEBUG)
    keys = ("client-key-one-6a5b4c3d", "client-key-two-0f1e2d3c")
    server = start_server(client_api_keys=keys)
    body = {"model": MODEL, "messages": _msgs("hi")}

    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {keys[0]}"}):
        response = httpx.post(server.url + CHAT, json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert keys[0] not in response.text and keys[1] not in response.text
    assert httpx.get(server.url + "/v1/models").status_code == 401
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200  # liveness stays open

    for key in keys:  # any configured key works, through the official client too
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(**body).choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).models.list()
    assert keys[0] not in caplog.text and keys[1] not in caplog.text


# --- limits ---------------------------------------------------------------------------------


def test_bodies_over_the_limit_get_413_unread(start_server, fresh_upstreams):
    router = HashRouter("mf-minilm")
    server = start_server({"mf-minilm": router}, max_body_bytes=2000)
    big = json.dumps({"model": MODEL, "messages": _msgs("x" * 5000)}).encode()

    response = _post_raw(server, CHAT, big)  # with Content-Length: refused before reading
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    response = httpx.post(
        server.url + CHAT, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert not router.batch_sizes and not fresh_upstreams[0].requests
    assert not fresh_upstreams[1].requests

    small = {"model": MODEL, "messages": _msgs("x" * 100)}
    assert httpx.post(server.url + CHAT, json=small).status_code == 200


def test_max_tokens_cap(start_server, fresh_upstreams):
    server = start_server(max_tokens=64)
    up = {m: u for m, u in zip(("strong", "weak"), fresh_upstreams)}
    url = server.url + CHAT

    for field in ("max_tokens", "max_completion_tokens"):
        response = httpx.post(url, json={"model": MODEL, "messages": _msgs("q"), field: 65})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == field and "at most 64" in error["message"]
    response = httpx.post(url, json={"model": MODEL, "messages": _msgs("q"), "max_tokens": "9"})
    assert response.status_code == 400
    assert not up["strong"].requests and not up["weak"].requests

    # Asking nothing gets the cap; asking within it passes unchanged.
    response = httpx.post(url, json={"model": MODEL, "messages": _msgs("q")})
    role = response.headers["x-routellm-routed-to"]
    assert up[role].requests[-1][0]["max_tokens"] == 64
    httpx.post(url, json={"model": MODEL, "messages": _msgs("q"), "max_completion_tokens": 10})
    sent = up[role].requests[-1][0]
    assert sent["max_completion_tokens"] == 10 and "max_tokens" not in sent


def test_a_full_router_queue_answers_429_with_retry_after(start_server):
    release = threading.Event()

    class Stuck(HashRouter):
        def win_rate(self, prompts, strong=None, weak=None):
            self.batch_sizes.append(len(prompts))
            release.wait(10)
            return super().win_rate(prompts, strong, weak)

    router = Stuck("mf-minilm")
    server = start_server({"mf-minilm": router}, max_batch=1, max_queue=2)
    results: dict[int, httpx.Response] = {}

    def route(i: int) -> None:
        results[i] = httpx.post(
            server.url + "/v1/route", json={"model": MODEL, "prompt": f"p{i}"}, timeout=30
        )

    workers = [threading.Thread(target=route, args=(0,))]
    workers[0].start()
    while not router.batch_sizes:  # p0 is in the (stuck) forward pass
        time.sleep(0.005)
    for i in (1, 2):  # these two fill the queue
        workers.append(threading.Thread(target=route, args=(i,)))
        workers[-1].start()
    deadline = time.monotonic() + 10
    while _metric(server, "routellm_router_waiting") < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    response = httpx.post(server.url + "/v1/route", json={"model": MODEL, "prompt": "late"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "queue_full"
    too_many = httpx.post(
        server.url + "/v1/route", json={"model": MODEL, "prompt": ["a", "b", "c"]}
    )
    assert too_many.status_code == 400 and "at most 2" in too_many.text
    release.set()
    for worker in workers:
        worker.join()
    assert all(r.status_code == 200 for r in results.values())


# --- streams whose client left ----------------------------------------------------------------


def _assert_upstream_stopped(records, gone: float) -> None:
    assert len(records) == 3
    for record in records:
        assert record.ended.wait(5)
        assert not record.completed and record.disconnected_at is not None
        assert record.produced_after(gone) <= 3  # without the fix: all the rest, for nobody


def test_clients_leaving_mid_stream_stop_the_upstream(start_server, fresh_upstreams):
    strong_up, _ = fresh_upstreams
    strong_up.mode = "slow_stream"  # 100 chunks, 10 ms apart; stops when its client leaves
    server = start_server()
    body = {"model": "router-mf-minilm-0", "messages": _msgs("long answer"), "stream": True}

    with httpx.Client(base_url=server.url, timeout=10) as client:
        streams = []
        for _ in range(3):
            stream = client.stream("POST", CHAT, json=body)
            lines = stream.__enter__().iter_lines()
            got = 0
            while got < 2:
                got += next(lines).startswith("data: {")
            streams.append(stream)
        for stream in streams:  # every client walks away mid-answer
            stream.__exit__(None, None, None)
        gone = time.monotonic()
    _assert_upstream_stopped(strong_up.streams, gone)


def test_clients_leaving_before_the_first_token_stop_the_upstream(start_server, fresh_upstreams):
    """Clients whose timeout is shorter than the upstream's time to first token: the upstream
    request is cancelled when they leave (before, it streamed its whole answer to nobody)."""
    strong_up, _ = fresh_upstreams
    strong_up.mode = "slow_stream"
    strong_up.slow_first_s = 0.4
    try:
        server = start_server()
        body = {"model": "router-mf-minilm-0", "messages": _msgs("long answer"), "stream": True}

        def impatient() -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.url + CHAT, json=body, timeout=httpx.Timeout(5, read=0.1))

        clients = [threading.Thread(target=impatient) for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        gone = time.monotonic()
        deadline = time.monotonic() + 5
        while len(strong_up.streams) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        _assert_upstream_stopped(strong_up.streams, gone)
        assert all(not record.chunk_times for record in strong_up.streams)
        assert _metric(server, "routellm_http_requests_total", 'status="499"') == 3
    finally:
        strong_up.slow_first_s = 0.0


# --- keys in relayed upstream errors ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["bad_request", "bad_request_escaped", "bad_request_text"])
def test_upstream_errors_never_relay_the_key_in_any_form(
    start_server, fresh_upstreams, strong_key, mode
):
    fresh_upstreams[0].mode = mode
    server = start_server()
    response = httpx.post(
        server.url + CHAT, json={"model": "router-mf-minilm-0", "messages": _msgs("q")}
    )
    assert response.status_code == 400 and "fake upstream rejects" in response.text
    assert "***" in response.text
    message = response.json()["error"]["message"]  # decoded: \u escapes are gone here
    escaped = "".join(f"\\u{ord(c):04x}" for c in strong_key)
    for text in (response.text, message):
        assert strong_key not in text and escaped not in text
        assert strong_key[5:] not in text  # no tail of it either, in any case


def test_redactor_catches_mixed_encodings_and_json():
    key = "sk-Ab/9"
    redact = _Redactor([key, None])
    forms = [
        key,
        "sk-\\u0041b\\/9",
        "sk%2DAb%2F9",
        "sk-\\x41\\x62/9",
        "s&#x6B;-Ab&#47;9",
        "%73K-Ab/9".replace("K", "k"),
    ]
    for form in forms:
        assert redact(f"<{form}>") == "<***>", form
    assert redact("sk-ab/9") == "sk-ab/9"  # the key's own characters stay case-sensitive
    nested = {"error": {"message": [f"a {key}"], key: 1}}
    assert json.dumps(redact.scrub_json(nested)) == '{"error": {"message": ["a ***"], "***": 1}}'
