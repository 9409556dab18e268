"""An OpenAI-compatible routing server: pick the strong or weak model per request, forward, relay.

``create_app(routers, settings)`` builds the FastAPI app (``routellm-jax serve`` runs it under
uvicorn). Endpoints:

* ``POST /v1/chat/completions`` (streaming and not): the ``model`` field names the router and its
  threshold (``router-<name>-<threshold>``) or strong share (``router-<name>@<share>``); the last
  user message (or the whole conversation) is scored, the request goes to the chosen upstream
  with ``model`` replaced by that upstream's model name, and the answer comes back with ``model``
  naming the routed model. Headers ``x-routellm-*`` (and, non-streamed, a ``routellm`` field) say
  which router, threshold, win rate, model and fallback applied.
* ``POST /v1/route``: the decision and win rate only, for clients that call models themselves.
* ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text).

Router forward passes are micro-batched across concurrent requests (:mod:`.batching`) and run in
worker threads. An upstream that errors (5xx, 429, connection error) or times out is retried, then
the other model answers (``fallback="other"``) or the client gets a 502 naming the upstream by role
and host. API keys are only ever put in the ``Authorization`` header: every text that leaves the
server (errors, logs, relayed upstream errors) is scrubbed of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import certifi
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from routellm_jax.serve.batching import MicroBatcher
from routellm_jax.serve.routing import (
    ROUTE_ON_CHOICES,
    RouteOn,
    RouterLike,
    RouteSpec,
    RoutingError,
    choose_strong,
    parse_model,
    routing_prompt,
)

logger = logging.getLogger("routellm_jax.serve")

Role = Literal["strong", "weak"]
_OTHER: dict[str, Role] = {"strong": "weak", "weak": "strong"}
# Upstream statuses worth another try (server faults and rate limits); other 4xx go back as-is.
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_CONNECTIONS_PER_CLIENT = 16
# Paths counted by name in the metrics (anything else is "other", so scans cannot add labels).
_KNOWN_PATHS = frozenset({"/v1/chat/completions", "/v1/route", "/v1/models", "/health", "/metrics"})


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One OpenAI-compatible endpoint: the model name to ask for, its base URL and API key.

    ``base_url`` is the API root (``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``).
    The key is kept out of ``repr`` so it never lands in a log line by accident.

    Example:
        >>> Upstream("strong", "gpt-4o", "http://127.0.0.1:8001/v1").host
        '127.0.0.1:8001'
    """

    role: Role
    model: str
    base_url: str
    api_key: str | None = dataclasses.field(default=None, repr=False)

    @property
    def host(self) -> str:
        """Host and port of the base URL (what errors name; never the path or credentials)."""
        url = httpx.URL(self.base_url)
        return f"{url.host}:{url.port}" if url.port else url.host

    def describe(self) -> str:
        """How errors and logs name this upstream: role, model and host (never the key).

        Example:
            >>> Upstream("weak", "small", "http://127.0.0.1:8002/v1", "sk-x").describe()
            "weak upstream 'small' at 127.0.0.1:8002"
        """
        return f"{self.role} upstream {self.model!r} at {self.host}"


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """How the server routes and forwards.

    ``router_strong``/``router_weak`` name the pair in the router's own model table (multi-model
    routers such as MF score any pair); ``None`` uses the router's default pair.

    Example:
        >>> s = ServeSettings(Upstream("strong", "big", "http://127.0.0.1:1/v1"),
        ...                   Upstream("weak", "small", "http://127.0.0.1:2/v1"))
        >>> s.fallback, s.retries
        ('other', 1)
    """

    strong: Upstream
    weak: Upstream
    route_on: RouteOn = "last"
    batch_window_ms: float = 5.0
    max_batch: int = 64
    upstream_timeout_s: float = 60.0
    retries: int = 1
    retry_backoff_s: float = 0.1  # wait before retry k (k = 1, 2, ...): backoff * 2**(k-1)
    fallback: Literal["other", "error"] = "other"
    router_strong: str | None = None
    router_weak: str | None = None
    max_upstream_connections: int = 256

    def __post_init__(self) -> None:
        if self.strong.role != "strong" or self.weak.role != "weak":
            raise ValueError("ServeSettings: strong/weak upstreams must have roles strong/weak")
        if self.route_on not in ROUTE_ON_CHOICES:
            raise ValueError(f"route_on must be one of {ROUTE_ON_CHOICES}, got {self.route_on!r}")
        if self.fallback not in ("other", "error"):
            raise ValueError(f"fallback must be 'other' or 'error', got {self.fallback!r}")
        if self.retries < 0 or self.max_batch < 1 or self.batch_window_ms < 0:
            raise ValueError("retries and batch_window_ms must be >= 0 and max_batch >= 1")
        if self.retry_backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {self.retry_backoff_s}")
        if self.upstream_timeout_s <= 0:
            raise ValueError(f"upstream_timeout_s must be > 0, got {self.upstream_timeout_s}")

    def upstream(self, role: Role) -> Upstream:
        """The strong or weak upstream.

        Example:
            >>> settings.upstream("weak").model  # doctest: +SKIP
            'small'
        """
        return self.strong if role == "strong" else self.weak


class _Redactor:
    """Replaces every configured secret in a text with ``***``."""

    def __init__(self, secrets: list[str | None]) -> None:
        # Longest first, so a key that contains another is scrubbed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class ServeMetrics:
    """Prometheus metrics of one app, in its own registry (no process-global state).

    Example:
        >>> m = ServeMetrics()
        >>> m.routed.labels(router="r", model="big", role="strong", endpoint="chat").inc()
        >>> b"routellm_routed_total" in m.render()
        True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.routed = Counter(
            "routellm_routed",
            "Routing decisions, by router and chosen model (endpoint: chat or route).",
            ["router", "model", "role", "endpoint"],
            registry=r,
        )
        self.served = Counter(
            "routellm_upstream_responses",
            "Responses relayed from upstreams, by the model that answered and its HTTP status.",
            ["model", "role", "status"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "routellm_upstream_errors",
            "Failed upstream attempts (kind: timeout, connection, http_<status>, stream).",
            ["role", "kind"],
            registry=r,
        )
        self.fallbacks = Counter(
            "routellm_fallbacks",
            "Requests passed to the other model after the routed one failed (retries spent).",
            ["from_role", "to_role"],
            registry=r,
        )
        self.requests = Counter(
            "routellm_http_requests",
            "HTTP requests served, by path and status.",
            ["path", "status"],
            registry=r,
        )
        self.router_latency = Histogram(
            "routellm_router_latency_seconds",
            "Time from a request's prompt entering the batcher to its win rate (queue + forward).",
            ["router"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "routellm_router_batch_seconds",
            "Duration of one batched router forward pass.",
            ["router"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "routellm_router_batch_size",
            "Prompts per router forward pass.",
            ["router"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of this app's metrics (see the class example)."""
        return generate_latest(self.registry)


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class _RouterFailed(Exception):
    """The router's forward pass raised (a server fault: 500)."""


class _UpstreamFailed(Exception):
    """Every allowed attempt at the routed upstream (and the fallback, if any) failed."""


@dataclasses.dataclass
class _Decision:
    router: str
    threshold: float
    strong_share: float | None
    win_rate: float
    role: Role
    router_s: float  # submit -> win rate: batching wait + forward pass

    def headers(self, settings: ServeSettings) -> dict[str, str]:
        return {
            # Standard Server-Timing: lets clients and load tools see the router's share.
            "server-timing": f"router;dur={self.router_s * 1000:.3f}",
            "x-routellm-router": self.router,
            "x-routellm-threshold": repr(self.threshold),
            "x-routellm-win-rate": repr(self.win_rate),
            "x-routellm-routed-to": self.role,
            "x-routellm-model": settings.upstream(self.role).model,
        }


class _State:
    """Everything that lives for one run of the app (created in its lifespan, in its loop)."""

    def __init__(self, routers: Mapping[str, RouterLike], settings: ServeSettings, metrics):
        self.routers = routers
        self.settings = settings
        self.metrics: ServeMetrics = metrics
        self.redact = _Redactor([settings.strong.api_key, settings.weak.api_key])
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, len(routers)), thread_name_prefix="routellm-router"
        )
        self.batchers = {
            name: MicroBatcher(
                self._batch_fn(router),
                window_s=settings.batch_window_ms / 1000.0,
                max_batch=settings.max_batch,
                executor=self.executor,
                observer=self._observer(name),
            )
            for name, router in routers.items()
        }
        # httpcore scans every pooled connection on each request (O(connections) per call, with a
        # poll() each), which collapses throughput at ~64 concurrent requests on one client; a few
        # small clients used round-robin keep that scan short.
        per_client = min(_CONNECTIONS_PER_CLIENT, settings.max_upstream_connections)
        shards = -(-settings.max_upstream_connections // per_client)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        # One TLS context for all of them (loading the CA bundle costs tens of ms per client).
        tls = ssl.create_default_context(cafile=certifi.where())
        self.clients = {
            role: [
                httpx.AsyncClient(
                    base_url=up.base_url,
                    headers={"Authorization": f"Bearer {up.api_key}"} if up.api_key else {},
                    timeout=httpx.Timeout(settings.upstream_timeout_s),
                    limits=limits,
                    verify=tls,
                )
                for _ in range(shards)
            ]
            for role, up in (("strong", settings.strong), ("weak", settings.weak))
        }
        self._next_client = itertools.count()
        self.threshold_cache: dict[tuple[str, float], float] = {}
        self.started = int(time.time())

    def _batch_fn(self, router: RouterLike):
        strong, weak = self.settings.router_strong, self.settings.router_weak

        def run(prompts):
            return router.win_rate(list(prompts), strong=strong, weak=weak)

        return run

    def _observer(self, name: str):
        def observe(size: int, seconds: float) -> None:
            self.metrics.batch_size.labels(router=name).observe(size)
            self.metrics.batch_seconds.labels(router=name).observe(seconds)

        return observe

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        for clients in self.clients.values():
            for client in clients:
                await client.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- routing ---------------------------------------------------------------------------

    def threshold(self, spec: RouteSpec) -> float:
        if spec.threshold is not None:
            return spec.threshold
        key = (spec.router, spec.strong_share)
        if key not in self.threshold_cache:
            self.threshold_cache[key] = spec.resolve_threshold(
                self.routers[spec.router], self.settings.router_strong, self.settings.router_weak
            )
        return self.threshold_cache[key]

    async def decide(self, spec: RouteSpec, prompt: str, endpoint: str) -> _Decision:
        threshold = self.threshold(spec)
        start = time.perf_counter()
        win_rate = await self.batchers[spec.router].submit(prompt)
        router_s = time.perf_counter() - start
        self.metrics.router_latency.labels(router=spec.router).observe(router_s)
        role: Role = "strong" if choose_strong(win_rate, threshold) else "weak"
        self.metrics.routed.labels(
            router=spec.router,
            model=self.settings.upstream(role).model,
            role=role,
            endpoint=endpoint,
        ).inc()
        return _Decision(spec.router, threshold, spec.strong_share, win_rate, role, router_s)

    # --- forwarding ------------------------------------------------------------------------

    async def _attempt(self, role: Role, body: dict, stream: bool) -> httpx.Response:
        """One request to an upstream; the response is open (unread) when streaming."""
        clients = self.clients[role]
        client = clients[next(self._next_client) % len(clients)]
        request = client.build_request("POST", "chat/completions", json=body)
        return await client.send(request, stream=stream)

    async def forward(self, role: Role, body: dict, stream: bool) -> tuple[httpx.Response, Role]:
        """Send to ``role`` with retries, then to the other model when the fallback allows.

        Returns the first response that is not a retryable failure (a 2xx, or a 4xx the client
        must see) and the role that answered; raises :class:`_UpstreamFailed` otherwise.
        """
        s = self.settings
        roles: list[Role] = [role] + ([_OTHER[role]] if s.fallback == "other" else [])
        failures = []
        for i, current in enumerate(roles):
            up = s.upstream(current)
            payload = dict(body, model=up.model)
            reason = ""
            for attempt in range(1 + s.retries):
                if attempt:  # a 429/503 upstream deserves a moment before the retry
                    await asyncio.sleep(s.retry_backoff_s * 2 ** (attempt - 1))
                try:
                    response = await self._attempt(current, payload, stream)
                except httpx.TimeoutException:
                    kind, reason = "timeout", f"timed out after {s.upstream_timeout_s:g} s"
                except httpx.HTTPError as err:
                    kind, reason = "connection", f"connection error ({type(err).__name__})"
                else:
                    if response.status_code not in _RETRYABLE_STATUS:
                        return response, current
                    kind, reason = f"http_{response.status_code}", f"HTTP {response.status_code}"
                    await response.aclose()
                self.metrics.upstream_errors.labels(role=current, kind=kind).inc()
                logger.warning(
                    self.redact(
                        f"{up.describe()}: attempt {attempt + 1}/{1 + s.retries} failed: {reason}"
                    )
                )
            failures.append(f"{up.describe()} failed after {1 + s.retries} attempt(s): {reason}")
            if i + 1 < len(roles):
                self.metrics.fallbacks.labels(from_role=current, to_role=roles[i + 1]).inc()
                logger.warning(f"falling back from the {current} to the {roles[i + 1]} model")
        raise _UpstreamFailed(self.redact("; ".join(failures)))


class _CountRequests:
    """Pure ASGI middleware counting responses by path and status (cheap, stream-safe)."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"
                self.metrics.requests.labels(path=path, status=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def _read_json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RoutingError(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise RoutingError("request body must be a JSON object")
    return body


def create_app(routers: Mapping[str, RouterLike], settings: ServeSettings) -> FastAPI:
    """Build the routing server for ``routers`` (name -> router) and ``settings``.

    Example:
        >>> from routellm_jax.serve.testing import HashRouter
        >>> app = create_app({"fake": HashRouter("fake")}, ServeSettings(
        ...     Upstream("strong", "big", "http://127.0.0.1:8001/v1"),
        ...     Upstream("weak", "small", "http://127.0.0.1:8002/v1")))
        >>> # uvicorn.run(app, host="127.0.0.1", port=6060)
    """
    if not routers:
        raise ValueError("create_app needs at least one router")
    for name, router in routers.items():
        if not isinstance(router, RouterLike):
            raise TypeError(f"router {name!r} lacks win_rate/threshold_for_share/name")
    routers = dict(routers)
    metrics = ServeMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _State(routers, settings, metrics)
        app.state.routellm = state
        logger.info(
            f"routing with {sorted(routers)}: strong={settings.strong.describe()}, "
            f"weak={settings.weak.describe()}"
        )
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(title="routellm-jax router", lifespan=lifespan)
    app.state.metrics = metrics

    def state_of(request: Request) -> _State:
        return request.app.state.routellm

    app.add_middleware(_CountRequests, metrics=metrics)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), type_="invalid_request_error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, f"invalid request: {exc.errors()}")

    @app.exception_handler(RoutingError)
    async def routing_error(request: Request, exc: RoutingError) -> JSONResponse:
        return _error(400, str(exc), param=exc.param, code=exc.code)

    async def decide_or_raise(state: _State, body: dict, endpoint: str, prompt: str) -> _Decision:
        spec = parse_model(body.get("model"), list(routers))
        try:
            return await state.decide(spec, prompt, endpoint)
        except RoutingError:
            raise
        except Exception as err:  # the router itself failed: a server fault, reported as such
            logger.exception(f"router {spec.router!r} failed")
            raise _RouterFailed(f"router {spec.router!r} failed: {type(err).__name__}") from err

    @app.exception_handler(_RouterFailed)
    async def router_failed(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, str(exc), type_="server_error", code="router_failed")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions, routed to the strong or weak upstream."""
        state = state_of(request)
        body = _read_json_body(await request.body())
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RoutingError("'stream' must be true or false", param="stream")
        prompt = routing_prompt(body.get("messages"), settings.route_on)
        decision = await decide_or_raise(state, body, "chat", prompt)
        headers = decision.headers(settings)
        try:
            response, answered = await state.forward(decision.role, body, stream)
        except _UpstreamFailed as err:
            return _error(
                502, str(err), type_="upstream_error", code="upstream_failed", headers=headers
            )
        model = settings.upstream(answered).model
        metrics.served.labels(model=model, role=answered, status=str(response.status_code)).inc()
        if answered != decision.role:
            headers["x-routellm-fallback"] = f"{decision.role}->{answered}"
            headers["x-routellm-model"] = model
        if response.status_code >= 400:  # a client error the upstream reported: pass it on
            return await _relay_client_error(response, answered, state, headers)
        if stream:
            return StreamingResponse(
                _relay_stream(response, model, answered, state),
                media_type="text/event-stream",
                headers=headers,
            )
        try:
            data = response.json()
        except ValueError:
            return _error(
                502,
                f"{settings.upstream(answered).describe()} returned a body that is not JSON",
                type_="upstream_error",
                code="upstream_bad_response",
                headers=headers,
            )
        if isinstance(data, dict):
            data["model"] = model
            data["routellm"] = {
                "router": decision.router,
                "threshold": decision.threshold,
                "strong_share": decision.strong_share,
                "win_rate": decision.win_rate,
                "routed_to": decision.role,
                "answered_by": answered,
                "fallback": answered != decision.role,
            }
        return JSONResponse(data, headers=headers)

    @app.post("/v1/route")
    async def route(request: Request) -> JSONResponse:
        """Body: ``model`` plus ``messages`` (chat shape), ``prompt`` (a string) or a list of them."""
        state = state_of(request)
        body = _read_json_body(await request.body())
        if "messages" in body:
            prompts, single = [routing_prompt(body["messages"], settings.route_on)], True
        elif isinstance(body.get("prompt"), str):
            prompts, single = [body["prompt"]], True
        elif isinstance(body.get("prompt"), list) and body["prompt"]:
            if not all(isinstance(p, str) for p in body["prompt"]):
                raise RoutingError("'prompt' must be a string or a list of strings", "prompt")
            prompts, single = body["prompt"], False
        else:
            raise RoutingError(
                "give 'messages' (chat format) or 'prompt' (a string or a list of strings)",
                param="messages",
            )
        if any(not p.strip() for p in prompts):
            raise RoutingError("every prompt must contain text", param="prompt")
        decisions = await asyncio.gather(
            *(decide_or_raise(state, body, "route", p) for p in prompts)
        )
        out = [
            {
                "object": "routellm.route",
                "router": d.router,
                "threshold": d.threshold,
                "strong_share": d.strong_share,
                "win_rate": d.win_rate,
                "routed_to": d.role,
                "model": settings.upstream(d.role).model,
            }
            for d in decisions
        ]
        if single:
            return JSONResponse(out[0], headers=decisions[0].headers(settings))
        return JSONResponse({"object": "list", "data": out})

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        """The routers, as OpenAI model entries with a usage hint."""
        state = state_of(request)
        data = [
            {
                "id": f"router-{name}",
                "object": "model",
                "created": state.started,
                "owned_by": "routellm-jax",
                "routellm": {
                    "usage": f"router-{name}-<threshold> or router-{name}@<strong share>",
                    "strong_model": settings.strong.model,
                    "weak_model": settings.weak.model,
                },
            }
            for name in sorted(routers)
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/health")
    async def health() -> JSONResponse:
        """Liveness: the routers and upstreams this server uses (upstreams are not called)."""
        return JSONResponse(
            {
                "status": "ok",
                "routers": sorted(routers),
                "strong": settings.strong.describe(),
                "weak": settings.weak.describe(),
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _relay_client_error(
    response: httpx.Response, role: Role, state: _State, headers: dict
) -> JSONResponse:
    """An upstream 4xx (bad parameter, auth...): same status, its error, scrubbed of keys."""
    try:
        raw = await response.aread()
    finally:
        await response.aclose()
    text = state.redact(raw.decode("utf-8", errors="replace"))
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or "error" not in data:
        data = {
            "error": {
                "message": f"{state.settings.upstream(role).describe()} answered "
                f"{response.status_code}: {text[:500]}",
                "type": "upstream_error",
                "param": None,
                "code": None,
            }
        }
    return JSONResponse(data, status_code=response.status_code, headers=headers)


async def _relay_stream(
    response: httpx.Response, model: str, role: Role, state: _State
) -> AsyncIterator[str]:
    """Relay the upstream's server-sent events, with ``model`` set to the routed model's name."""
    try:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                if payload and payload != "[DONE]":
                    try:
                        chunk = json.loads(payload)
                    except ValueError:
                        chunk = None
                    if isinstance(chunk, dict) and "model" in chunk:
                        chunk["model"] = model
                        line = "data: " + json.dumps(chunk, separators=(",", ":"))
            yield line + "\n"
    except httpx.HTTPError as err:
        # Headers are sent: the only way left to tell the client is an error event, which the
        # openai client raises as APIError.
        state.metrics.upstream_errors.labels(role=role, kind="stream").inc()
        message = state.redact(
            f"{state.settings.upstream(role).describe()} broke off the stream "
            f"({type(err).__name__})"
        )
        logger.warning(message)
        error = {"error": {"message": message, "type": "upstream_error", "code": "stream_broken"}}
        yield f"data: {json.dumps(error)}\n\n"
    finally:
        await response.aclose()
