"""Stand-ins for trying the server without trained weights or paid APIs (tests, benchmarks, demos).

* :class:`HashRouter`: a deterministic router (win rate from a hash of the prompt) with the
  :class:`~routellm_jax.serve.routing.RouterLike` protocol and a calibration from a fixed set.
* :class:`FakeUpstream`: a real HTTP server on loopback that answers OpenAI chat completions
  deterministically (streamed or not), with switches to fail, hang, break streams, stream slowly
  (recording in :class:`StreamRecord` what it generated after its client left) or echo the key
  in escaped forms.
* :class:`ServerThread`: runs any ASGI app under uvicorn in a background thread on a free port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np


class HashRouter:
    """A fake router: P(strong wins) = a hash of (seed, prompt) mapped to [0, 1).

    ``delay_s`` sleeps per batch (a stand-in for a forward pass); ``batch_sizes`` records every
    batch it saw. The calibration set is 4,096 synthetic prompts, so ``threshold_for_share(s)``
    is close to ``1 - s``.

    Example:
        >>> r = HashRouter("fake")
        >>> w = r.win_rate(["hello", "hello"])
        >>> bool(w[0] == w[1] and 0 <= w[0] < 1)
        True
    """

    def __init__(self, name: str = "hash", *, seed: int = 0, delay_s: float = 0.0) -> None:
        self.name = name
        self.seed = seed
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []
        self._calibration: np.ndarray | None = None

    def _score(self, prompt: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}\x00{prompt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2.0**64

    def win_rate(
        self, prompts: Sequence[str], strong: str | None = None, weak: str | None = None
    ) -> np.ndarray:
        """[n] float64 P(strong wins), deterministic per prompt.

        Example:
            >>> HashRouter("fake").win_rate(["a", "b"]).shape
            (2,)
        """
        self.batch_sizes.append(len(prompts))
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.array([self._score(p) for p in prompts], dtype=np.float64)

    def model_quality(self, prompts: Sequence[str], models: Sequence[str]) -> np.ndarray:
        """``[n, m]`` float64 fake expected quality: a hash of (seed, model, prompt) in [0, 1),
        as :meth:`routellm_jax.api.Router.model_quality` gives for model-aware routers.

        Example:
            >>> HashRouter("fake").model_quality(["a", "b"], ["x", "y", "z"]).shape
            (2, 3)
        """
        self.batch_sizes.append(len(prompts))
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.array(
            [[self._score(f"{m}\x00{p}") for m in models] for p in prompts], dtype=np.float64
        )

    def threshold_for_share(
        self, share: float, strong: str | None = None, weak: str | None = None
    ) -> float:
        """The threshold sending about ``share`` of the calibration prompts to the strong model.

        Example:
            >>> round(HashRouter("fake").threshold_for_share(0.5), 1)
            0.5
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must lie in [0, 1], got {share}")
        if self._calibration is None:
            self._calibration = np.array(
                [self._score(f"calibration prompt {i}") for i in range(4096)]
            )
        return float(np.quantile(self._calibration, 1.0 - share))

    def route(
        self,
        prompts: Sequence[str],
        *,
        threshold: float | None = None,
        strong_share: float | None = None,
        strong: str | None = None,
        weak: str | None = None,
    ) -> np.ndarray:
        """[n] bool, True = strong (win rate >= threshold), as ``routellm_jax.api.Router.route``.

        Example:
            >>> HashRouter("fake").route(["a"], threshold=0.0).tolist()
            [True]
        """
        if (threshold is None) == (strong_share is None):
            raise ValueError("give exactly one of threshold and strong_share")
        if threshold is None:
            threshold = self.threshold_for_share(strong_share)
        return np.array([self._score(p) >= threshold for p in prompts], dtype=bool)


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclasses.dataclass
class StreamRecord:
    """What one streamed answer of a :class:`FakeUpstream` did.

    ``chunk_times``: ``time.monotonic()`` when each event was produced; ``disconnected_at``: when
    its client (the server under test) dropped the connection, if it did; ``completed``: every
    event was produced. ``ended`` is set when the stream stops either way.
    """

    chunk_times: list[float] = dataclasses.field(default_factory=list)
    disconnected_at: float | None = None
    completed: bool = False
    ended: threading.Event = dataclasses.field(default_factory=threading.Event)

    def produced_after(self, moment: float) -> int:
        """Events produced after ``moment`` (a ``time.monotonic()`` value)."""
        return sum(t > moment for t in self.chunk_times)


class FakeUpstream:
    """A deterministic OpenAI-compatible chat endpoint on 127.0.0.1 (an ASGI app + uvicorn thread).

    Answers ``POST /v1/chat/completions`` with ``"<model> answers: <last user text>"`` and reports
    ``model`` as ``"<model>-upstream"`` (as real APIs report a dated name). Switches, safe to flip
    from another thread:

    * ``mode``: ``"ok"``; ``"error"`` (HTTP 500); ``"hang"`` (sleep ``hang_s`` before answering);
      ``"bad_request"`` (HTTP 400 OpenAI error that echoes the Authorization header, as OpenAI
      echoes a wrong key); ``"bad_request_escaped"`` (the same, every character of the header
      written as a JSON ``\\uXXXX`` escape); ``"bad_request_text"`` (a 400 plain-text body with
      the header percent-encoded); ``"break_stream"`` (streams one chunk, then drops the
      connection); ``"slow_stream"`` (waits ``slow_first_s``, then streams ``slow_chunks``
      content chunks, one every ``slow_delay_s``, stopping as soon as its client disconnects,
      as vLLM aborts a request).
    * ``fail_next``: this many requests answer 500 before ``mode`` applies again.

    ``requests`` records (body, Authorization header) of every request; ``streams`` a
    :class:`StreamRecord` per streamed answer.
    """

    def __init__(
        self,
        *,
        hang_s: float = 2.0,
        slow_chunks: int = 100,
        slow_delay_s: float = 0.01,
        slow_first_s: float = 0.0,
    ) -> None:
        self.mode = "ok"
        self.fail_next = 0
        self.hang_s = hang_s
        self.slow_chunks = slow_chunks
        self.slow_delay_s = slow_delay_s
        self.slow_first_s = slow_first_s
        self.requests: list[tuple[dict, str | None]] = []
        self.streams: list[StreamRecord] = []
        self._lock = threading.Lock()
        self._thread: ServerThread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Serve on 127.0.0.1 and a free port (see :attr:`base_url`); returns self."""
        self._thread = ServerThread(self).start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API root to give clients, e.g. ``http://127.0.0.1:PORT/v1``."""
        assert self._thread is not None, "FakeUpstream is not started"
        return f"{self._thread.url}/v1"

    def reset(self) -> None:
        """Back to answering normally, with no recorded requests."""
        with self._lock:
            self.mode, self.fail_next = "ok", 0
            self.requests.clear()
            self.streams.clear()

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await _send_json(send, 404, {"error": {"message": f"no route {scope['path']}"}})
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        body = json.loads(raw)
        with self._lock:
            self.requests.append((body, auth.decode() if auth else None))
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
            mode = self.mode
        if failing or mode == "error":
            await _send_json(send, 500, {"error": {"message": "fake upstream failure"}})
            return
        if mode == "hang":
            await asyncio.sleep(self.hang_s)
        if mode == "bad_request":
            # Like OpenAI's "Incorrect API key provided: sk-...": the key comes back in the body.
            error = {
                "message": f"fake upstream rejects this (authorization: {auth!r})",
                "type": "invalid_request_error",
            }
            await _send_json(send, 400, {"error": error})
            return
        if mode == "bad_request_escaped":
            # Valid JSON that spells the key only in \uXXXX escapes: a decoder turns it back.
            escaped = "".join(f"\\u{ord(c):04x}" for c in (auth or b"").decode())
            raw_error = (
                '{"error": {"message": "fake upstream rejects the key ' + escaped + '", '
                '"type": "invalid_request_error"}}'
            )
            await _send_raw(send, 400, raw_error.encode(), b"application/json")
            return
        if mode == "bad_request_text":
            quoted = urllib.parse.quote((auth or b"").decode(), safe="")
            text = f"fake upstream rejects the key {quoted}"
            await _send_raw(send, 400, text.encode(), b"text/plain")
            return
        model = str(body.get("model"))
        content = f"{model} answers: {_last_user_text(body.get('messages'))}"
        if mode == "slow_stream" and body.get("stream"):
            await self._slow_stream(receive, send, model)
            return
        if body.get("stream"):
            await self._stream(send, model, content, broken=mode == "break_stream")
            return
        words = content.split()
        await _send_json(
            send,
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": f"{model}-upstream",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": len(words),
                    "total_tokens": 1 + len(words),
                },
            },
        )

    async def _slow_stream(self, receive, send, model: str) -> None:
        record = StreamRecord()
        with self._lock:
            self.streams.append(record)

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            record.disconnected_at = time.monotonic()

        watcher = asyncio.ensure_future(watch())
        try:
            # Time to first token: a client that leaves meanwhile gets nothing generated.
            await asyncio.wait({watcher}, timeout=self.slow_first_s)
            if watcher.done():
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for i in range(self.slow_chunks):
                if watcher.done():  # the client is gone: stop generating, like a real server
                    return
                data = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": f"{model}-upstream",
                    "choices": [
                        {"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}
                    ],
                }
                record.chunk_times.append(time.monotonic())
                event = f"data: {json.dumps(data)}\n\n".encode()
                await send({"type": "http.response.body", "body": event, "more_body": True})
                await asyncio.sleep(self.slow_delay_s)
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            record.completed = True
        finally:
            watcher.cancel()
            record.ended.set()

    async def _stream(self, send, model: str, content: str, broken: bool) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": f"{model}-upstream",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        events = [chunk({"role": "assistant", "content": ""})]
        words = content.split(" ")
        events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        events += [chunk({}, "stop"), b"data: [DONE]\n\n"]
        for i, event in enumerate(events):
            if broken and i == 2:
                # Dropping the connection mid-body: uvicorn closes it on an app exception.
                raise ConnectionAbortedError("fake upstream breaks the stream")
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_json(send, status: int, data: dict) -> None:
    await _send_raw(send, status, json.dumps(data).encode(), b"application/json")


async def _send_raw(send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """Run an ASGI app under uvicorn in a daemon thread on 127.0.0.1 and a free port."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        import uvicorn

        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=1,
            # Long keep-alive: on a busy machine a pooled client connection can sit idle for
            # seconds, and a server-side close racing its reuse would fail the request.
            timeout_keep_alive=60,
            access_log=False,
        )
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="uvicorn")
        self.host = host

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        """Start uvicorn and wait until it listens; returns self."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn exited before it started (see its log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        """The port uvicorn bound (the OS picked it when ``port=0``)."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
