"""Stand-ins for trying the server without trained weights or paid APIs (tests, benchmarks, demos).

* :class:`HashRouter`: a deterministic router (win rate from a hash of the prompt) with the
  :class:`~routellm_jax.serve.routing.RouterLike` protocol and a calibration from a fixed set.
* :class:`FakeUpstream`: a real HTTP server on loopback that answers OpenAI chat completions
  deterministically (streamed or not), with switches to fail, hang or break streams.
* :class:`ServerThread`: runs any ASGI app under uvicorn in a background thread on a free port.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
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


class FakeUpstream:
    """A deterministic OpenAI-compatible chat endpoint on 127.0.0.1 (an ASGI app + uvicorn thread).

    Answers ``POST /v1/chat/completions`` with ``"<model> answers: <last user text>"`` and reports
    ``model`` as ``"<model>-upstream"`` (as real APIs report a dated name). Switches, safe to flip
    from another thread:

    * ``mode``: ``"ok"``; ``"error"`` (HTTP 500); ``"hang"`` (sleep ``hang_s`` before answering);
      ``"bad_request"`` (HTTP 400 OpenAI error that echoes the Authorization header, as OpenAI
      echoes a wrong key); ``"break_stream"`` (streams one chunk, then drops
      the connection).
    * ``fail_next``: this many requests answer 500 before ``mode`` applies again.

    ``requests`` records (body, Authorization header) of every request.

    Example:
        >>> with FakeUpstream() as up:  # doctest: +SKIP
        ...     openai.OpenAI(base_url=up.base_url, api_key="x").chat.completions.create(...)
    """

    def __init__(self, *, hang_s: float = 2.0) -> None:
        self.mode = "ok"
        self.fail_next = 0
        self.hang_s = hang_s
        self.requests: list[tuple[dict, str | None]] = []
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
        model = str(body.get("model"))
        content = f"{model} answers: {_last_user_text(body.get('messages'))}"
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
    body = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """Run an ASGI app under uvicorn in a daemon thread on 127.0.0.1 and a free port.

    Example:
        >>> with ServerThread(app) as server:  # doctest: +SKIP
        ...     httpx.get(server.url + "/health")
    """

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
