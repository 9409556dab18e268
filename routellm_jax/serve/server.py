"""An OpenAI-compatible routing server: pick the strong or weak model per request, forward, relay.

Longer than most modules because every endpoint shares one request lifecycle (authentication,
body and token limits, queueing, forwarding with cancellation and fallback, key scrubbing);
what stands alone lives beside it: N-model tables and policies (:mod:`routellm_jax.serve.n_model`),
the share controller (:mod:`routellm_jax.serve.budget`), served pairs
(:mod:`routellm_jax.serve.pairs`), micro-batching (:mod:`routellm_jax.serve.batching`).

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
worker threads; a batch that fails is scored again prompt by prompt, so one bad request cannot fail
the others. An upstream that errors (5xx, 429, connection error) or times out is retried, then
the other model answers (``fallback="other"``) or the client gets a 502 naming the upstream by role
and host.

Trust boundary:

* Clients: with ``client_api_keys`` set, every path but ``/health`` needs
  ``Authorization: Bearer <key>`` (compared in constant time with each key; 401 otherwise).
* Limits: bodies over ``max_body_bytes`` get a 413 before they are read whole; text that is not
  valid Unicode (an unpaired UTF-16 surrogate) gets a 400 naming its field; with ``max_tokens``
  set, a request asking more gets a 400 and one asking nothing is capped; more than ``max_queue``
  prompts waiting for a router get a 429 with ``Retry-After``.
* Streams: a client that disconnects closes the upstream request, so the upstream stops.
* Upstream keys are only ever sent in the ``Authorization`` header, and are scrubbed from the
  server's own errors and logs and from upstream error bodies and error events it relays: as they
  are, JSON-, percent-, ``\\x``- and HTML-escaped, after decoding JSON. Successful upstream answers
  are relayed as the upstream wrote them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import itertools
import json
import logging
import re
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
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from routellm_jax.api import PromptError
from routellm_jax.serve.batching import MicroBatcher, QueueFull
from routellm_jax.serve.budget import ControllerSettings, ShareController, reference_table
from routellm_jax.serve.n_model import (
    ModelUpstream,
    NModelDecision,
    NModelSpec,
    UpstreamTable,
    decide_n_model,
    endpoint_host,
    parse_n_model,
)
from routellm_jax.serve.pairs import ScoredPair, scored_pair
from routellm_jax.serve.routing import (
    ROUTE_ON_CHOICES,
    RouteOn,
    RouterLike,
    RouteSpec,
    RoutingError,
    check_text,
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
# Liveness probes must work without a key (it says which routers and upstream hosts are in use).
_OPEN_PATHS = frozenset({"/health"})
# Only this much of an upstream's error body is read (at most 500 characters of it are relayed).
_MAX_ERROR_BODY = 64 * 1024
# A JSON text can hold an unpaired surrogate only as a \uD800-\uDFFF escape once it decoded as
# strict UTF-8, so bodies without one skip the walk over every string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
# Share controllers (and their metric labels) per server: shares come from clients' model names,
# so past this many distinct (router, share) pairs new ones use the calibrated threshold.
MAX_SHARE_CONTROLLERS = 64


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
        return endpoint_host(self.base_url)

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
    # Bearer keys clients must send (empty: no authentication); kept out of repr like api_key.
    client_api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    max_body_bytes: int = 4 * 1024 * 1024
    max_tokens: int | None = None  # per request (per choice); None: no cap
    max_queue: int = 1024  # prompts waiting for each router's forward pass; past it, 429
    # Models for router-<name>:<policy>=<value> requests (routellm_jax.serve.n_model); None: off.
    upstream_table: UpstreamTable | None = None
    # router-<name>@<share> requests: an online controller keeps the realised strong share at
    # the target as traffic drifts (routellm_jax.serve.budget); False: the calibrated threshold.
    share_control: bool = True
    share_controller: ControllerSettings = ControllerSettings()

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
        if self.max_body_bytes < 1 or self.max_queue < 1:
            raise ValueError("max_body_bytes and max_queue must be >= 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 (or None), got {self.max_tokens}")
        for key in self.client_api_keys:
            # Checked without showing the key: a blank or spaced key is a config slip.
            if not isinstance(key, str) or not key or any(c.isspace() for c in key):
                raise ValueError("client_api_keys must be non-empty strings without spaces")

    def upstream(self, role: Role) -> Upstream:
        """The strong or weak upstream."""
        return self.strong if role == "strong" else self.weak


def _char_forms(ch: str) -> str:
    """A regex matching ``ch`` as written or in the escapes an upstream might echo it in."""
    code = ord(ch)
    hex_forms = ["".join(f"%{b:02x}" for b in ch.encode("utf-8"))]  # percent-encoding
    if code <= 0xFFFF:
        hex_forms.append(f"\\\\u{code:04x}")  # JSON, JavaScript, Python
    if code <= 0xFF:
        hex_forms.append(f"\\\\x{code:02x}")  # Python, C
    hex_forms.append(f"&#x0*{code:x};")  # HTML
    forms = [re.escape(ch), f"&#0*{code};", "(?i:" + "|".join(hex_forms) + ")"]
    if ch == "/":
        forms.append(r"\\/")  # JSON may escape a slash
    return "(?:" + "|".join(forms) + ")"


class _Redactor:
    """Replaces every configured secret in a text with ``***``: as written, or with any of its
    characters JSON-, percent-, ``\\x``- or HTML-escaped (mixed forms too).

    Example:
        >>> redact = _Redactor(["sk-abc"])
        >>> redact(r'key sk-abc, sk-\\u0061bc, sk%2Dabc, s&#107;-abc, {"k": ["sk\\x2dabc"]}')
        'key ***, ***, ***, ***, {"k": ["***"]}'
        >>> redact.scrub_json({"error": {"sk-abc": ["x sk-abc"]}})
        {'error': {'***': ['x ***']}}
    """

    def __init__(self, secrets: list[str | None]) -> None:
        # Longest first, so a key that contains another is scrubbed whole.
        unique = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join("".join(_char_forms(c) for c in s) for s in unique))
            if unique
            else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("***", text)

    def scrub_json(self, data: Any) -> Any:
        """Scrub every string and key of parsed JSON (escapes are decoded by then), in place."""
        if self._pattern is None:
            return data
        if isinstance(data, str):
            return self(data)
        stack = [data]
        while stack:  # iterative: upstream JSON may nest deeper than the stack allows
            container = stack.pop()
            if isinstance(container, list):
                for i, value in enumerate(container):
                    if isinstance(value, str):
                        container[i] = self(value)
                    elif isinstance(value, (list, dict)):
                        stack.append(value)
            elif isinstance(container, dict):
                items = list(container.items())
                container.clear()
                for key, value in items:
                    if isinstance(value, str):
                        value = self(value)
                    elif isinstance(value, (list, dict)):
                        stack.append(value)
                    container[self(key) if isinstance(key, str) else key] = value
        return data


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
        self.waiting = Gauge(
            "routellm_router_waiting",
            "Prompts waiting for the router's next forward pass (past max_queue: 429).",
            ["router"],
            registry=r,
        )
        self.share_target = Gauge(
            "routellm_share_target",
            "Strong share a router@share model name asks for (online share controller).",
            ["router", "target"],
            registry=r,
        )
        self.share_realised = Gauge(
            "routellm_share_realised",
            "Strong share of the controller's last window of decisions.",
            ["router", "target"],
            registry=r,
        )
        self.share_threshold = Gauge(
            "routellm_share_threshold",
            "The controller's current win-rate threshold.",
            ["router", "target"],
            registry=r,
        )
        self.score_psi = Gauge(
            "routellm_score_psi",
            "Drift gauge: population stability index of the live scores in the controller's "
            "window against the router's calibration reference (above 0.25: a warning is logged).",
            ["router", "target"],
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


class _Busy(Exception):
    """The router's queue is full (429 with Retry-After)."""


@dataclasses.dataclass
class _Decision:
    router: str
    threshold: float
    strong_share: float | None
    win_rate: float
    role: Role
    router_s: float  # submit -> win rate: batching wait + forward pass
    scored: str = ""  # the model pair the router scored ("STRONG vs WEAK")

    def headers(self, settings: ServeSettings) -> dict[str, str]:
        return {
            "x-routellm-scored-pair": self.scored,
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
        self.pairs = scored_pairs(routers, settings)
        table = settings.upstream_table
        self.redact = _Redactor(
            [
                settings.strong.api_key,
                settings.weak.api_key,
                *settings.client_api_keys,
                *(table.secrets() if table else []),
            ]
        )
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, len(routers)), thread_name_prefix="routellm-router"
        )
        self.batchers = {
            name: MicroBatcher(
                self._batch_fn(router, self.pairs[name]),
                window_s=settings.batch_window_ms / 1000.0,
                max_batch=settings.max_batch,
                executor=self.executor,
                observer=self._observer(name),
                max_queue=settings.max_queue,
            )
            for name, router in routers.items()
        }
        for name, batcher in self.batchers.items():
            metrics.waiting.labels(router=name).set_function(lambda b=batcher: b.waiting)
        # N-model scoring: one batcher per router that can rank the table's models.
        self.n_batchers = {
            name: MicroBatcher(
                self._quality_fn(router, table.names),
                window_s=settings.batch_window_ms / 1000.0,
                max_batch=settings.max_batch,
                executor=self.executor,
                observer=self._observer(name),
                max_queue=settings.max_queue,
            )
            for name, router in routers.items()
            if table is not None and callable(getattr(router, "model_quality", None))
        }
        # httpcore scans every pooled connection on each request (O(connections) per call, with a
        # poll() each), which collapses throughput at ~64 concurrent requests on one client; a few
        # small clients used round-robin keep that scan short.
        per_client = min(_CONNECTIONS_PER_CLIENT, settings.max_upstream_connections)
        shards = -(-settings.max_upstream_connections // per_client)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        # One TLS context for all of them: loading the CA bundle again for every client is slow.
        tls = ssl.create_default_context(cafile=certifi.where())

        def clients_of(up: Upstream | ModelUpstream) -> list[httpx.AsyncClient]:
            return [
                httpx.AsyncClient(
                    base_url=up.base_url,
                    headers={"Authorization": f"Bearer {up.api_key}"} if up.api_key else {},
                    timeout=httpx.Timeout(settings.upstream_timeout_s),
                    limits=limits,
                    verify=tls,
                )
                for _ in range(shards)
            ]

        self.clients = {
            role: clients_of(up)
            for role, up in (("strong", settings.strong), ("weak", settings.weak))
        }
        # The table's models, by name (their own label in metrics: role=<name>).
        self.table_clients = {u.name: clients_of(u) for u in (table.upstreams if table else ())}
        self._next_client = itertools.count()
        self.threshold_cache: dict[tuple[str, float], float] = {}
        self.controllers: dict[tuple[str, float], ShareController] = {}
        self.started = int(time.time())

    def _batch_fn(self, router: RouterLike, pair: ScoredPair):
        strong, weak = pair.strong, pair.weak

        def run(prompts):
            return router.win_rate(list(prompts), strong=strong, weak=weak)

        return run

    @staticmethod
    def _quality_fn(router: RouterLike, models: list[str]):
        def run(prompts):
            return router.model_quality(list(prompts), models)

        return run

    def _observer(self, name: str):
        def observe(size: int, seconds: float) -> None:
            self.metrics.batch_size.labels(router=name).observe(size)
            self.metrics.batch_seconds.labels(router=name).observe(seconds)

        return observe

    async def aclose(self) -> None:
        for batcher in [*self.batchers.values(), *self.n_batchers.values()]:
            await batcher.close()
        for clients in [*self.clients.values(), *self.table_clients.values()]:
            for client in clients:
                await client.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- routing ---------------------------------------------------------------------------

    def threshold(self, spec: RouteSpec) -> float:
        if spec.threshold is not None:
            return spec.threshold
        key = (spec.router, spec.strong_share)
        if key not in self.threshold_cache:
            pair = self.pairs[spec.router]
            self.threshold_cache[key] = spec.resolve_threshold(
                self.routers[spec.router], pair.strong, pair.weak
            )
        return self.threshold_cache[key]

    def controller(self, spec: RouteSpec) -> ShareController | None:
        """The share controller of a ``router@share`` name (made on first use, started from the
        router's calibration table); None for fixed thresholds or with ``share_control`` off."""
        if spec.strong_share is None or not self.settings.share_control:
            return None
        if not 0.0 < spec.strong_share < 1.0:  # 0 and 1 need no control: none or all go strong
            return None
        key = (spec.router, spec.strong_share)
        if key not in self.controllers:
            if len(self.controllers) >= MAX_SHARE_CONTROLLERS:
                return None
            s = self.settings
            router = self.routers[spec.router]

            def at(share: float) -> float:
                return RouteSpec(spec.router, strong_share=share).resolve_threshold(
                    router, s.router_strong, s.router_weak
                )

            reference = reference_table(at)
            self.controllers[key] = ShareController(
                spec.strong_share, reference, s.share_controller
            )
        return self.controllers[key]

    def _export(self, spec: RouteSpec, controller: ShareController) -> None:
        labels = {"router": spec.router, "target": repr(spec.strong_share)}
        self.metrics.share_target.labels(**labels).set(controller.target)
        self.metrics.share_realised.labels(**labels).set(controller.realised_share)
        self.metrics.share_threshold.labels(**labels).set(controller.threshold)
        self.metrics.score_psi.labels(**labels).set(controller.psi)

    async def decide(self, spec: RouteSpec, prompts: list[str], endpoint: str) -> list[_Decision]:
        """One decision per prompt; all prompts enter the router's queue at once, or none."""
        controller = self.controller(spec)
        threshold = self.threshold(spec) if controller is None else controller.threshold
        start = time.perf_counter()
        win_rates = await self.batchers[spec.router].submit_many(prompts)
        router_s = time.perf_counter() - start
        decisions = []
        for win_rate in win_rates:
            self.metrics.router_latency.labels(router=spec.router).observe(router_s)
            if controller is not None:  # the threshold this decision uses, then the update
                threshold = controller.threshold
                strong = controller.decide(win_rate)
                self._export(spec, controller)
            else:
                strong = choose_strong(win_rate, threshold)
            role: Role = "strong" if strong else "weak"
            self.metrics.routed.labels(
                router=spec.router,
                model=self.settings.upstream(role).model,
                role=role,
                endpoint=endpoint,
            ).inc()
            decisions.append(
                _Decision(
                    spec.router,
                    threshold,
                    spec.strong_share,
                    win_rate,
                    role,
                    router_s,
                    self.pairs[spec.router].describe(),
                )
            )
        return decisions

    async def decide_n(
        self,
        spec: NModelSpec,
        prompts: list[str],
        price_texts: list[str],
        output_tokens: float | None,
        endpoint: str,
    ) -> list[NModelDecision]:
        """One N-model decision per prompt (:mod:`.n_model`); all prompts queue at once."""
        table = self.settings.upstream_table
        if table is None:
            raise RoutingError(
                f"this server has no upstream table: {spec.router!r} routes between its strong "
                "and weak models only (router-<name>-<threshold> or router-<name>@<share>)",
                param="model",
            )
        batcher = self.n_batchers.get(spec.router)
        if batcher is None:
            raise RoutingError(
                f"router {spec.router!r} scores one strong/weak pair only and cannot rank the "
                f"{len(table.names)} models of the upstream table; use a model-aware router "
                "(irt, mf or sw_ranking)",
                param="model",
            )
        start = time.perf_counter()
        rows = await batcher.submit_many(prompts)
        router_s = time.perf_counter() - start
        decisions = []
        for row, text in zip(rows, price_texts):
            self.metrics.router_latency.labels(router=spec.router).observe(router_s)
            d = decide_n_model(spec, table, row, text, output_tokens, router_s)
            self.metrics.routed.labels(
                router=spec.router, model=d.upstream.model, role=d.upstream.name, endpoint=endpoint
            ).inc()
            decisions.append(d)
        return decisions

    # --- forwarding ------------------------------------------------------------------------

    async def _attempt(self, role: str, body: dict, stream: bool) -> httpx.Response:
        """One request to an upstream; the response is open (unread) when streaming."""
        clients = self.clients[role] if role in ("strong", "weak") else self.table_clients[role]
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
        return await self._forward_chain([(r, s.upstream(r)) for r in roles], body, stream)

    async def forward_n(
        self, decision: NModelDecision, body: dict, stream: bool
    ) -> tuple[httpx.Response, ModelUpstream]:
        """As :meth:`forward` among the table's models: the chosen one, then (with
        ``fallback="other"``) the policy's choice among the others."""
        chain = [decision.upstream]
        if self.settings.fallback == "other" and decision.fallback is not None:
            chain.append(decision.fallback)
        response, name = await self._forward_chain([(u.name, u) for u in chain], body, stream)
        return response, next(u for u in chain if u.name == name)

    async def _forward_chain(
        self, chain: list[tuple[str, Upstream | ModelUpstream]], body: dict, stream: bool
    ) -> tuple[httpx.Response, Any]:
        """Each ``(label, upstream)`` in turn, with retries; the first usable response and the
        label that gave it, or :class:`_UpstreamFailed`."""
        s = self.settings
        roles = [label for label, _ in chain]
        failures = []
        for i, (current, up) in enumerate(chain):
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


class _RequireApiKey:
    """Pure ASGI middleware: every path but ``/health`` needs ``Authorization: Bearer <key>``.

    The offered token is compared with every configured key by ``hmac.compare_digest`` (no early
    exit, so timing does not tell which key or how much of one matched). Tokens are never logged
    or echoed.
    """

    def __init__(self, app, keys: tuple[str, ...]) -> None:
        self.app = app
        self._keys = [key.encode("utf-8") for key in keys]

    def _authorized(self, scope) -> bool:
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    token = rest.strip()
                break
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = _error(
            401,
            "missing or invalid API key: send 'Authorization: Bearer <key>' with a key this "
            "server accepts",
            code="invalid_api_key",
            headers={"www-authenticate": "Bearer"},
        )
        await response(scope, receive, send)


class _LimitBody:
    """Pure ASGI middleware: a body over ``max_bytes`` gets a 413 and is not read further.

    A ``Content-Length`` over the limit is refused before any byte is read; a body sent without
    one (chunked) is counted as it arrives. The app then reads the body from memory.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope, receive, send) -> None:
        response = _error(
            413,
            f"request body is larger than this server's limit of {self.max_bytes} bytes",
            code="request_too_large",
            # The rest of the body is not read: the connection cannot carry another request.
            headers={"connection": "close"},
        )
        await response(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the HTTP server rejects a malformed length itself
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left mid-body: nobody to answer
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay() -> dict:
            # The buffered body first; then the server's own messages (http.disconnect).
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _client_gone(receive) -> None:
    """Return when the client disconnects (call once the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _RelayResponse(StreamingResponse):
    """Relays an upstream stream and closes the upstream request as soon as the client goes.

    The close is explicit, not left to where a cancellation happens to land: Starlette cancels
    its relay on a disconnect only under ASGI servers older than spec 2.4 (later ones report it
    at the next write), and a relay cancelled outside its generator leaves the upstream response
    open until garbage collection, with the upstream generating for nobody. Here the relay and a
    watch for ``http.disconnect`` race; whichever ends first, the relay generator and the
    upstream response are closed, which drops the upstream connection.
    """

    def __init__(self, lines: AsyncIterator[str], upstream: httpx.Response, headers: dict) -> None:
        super().__init__(lines, media_type="text/event-stream", headers=headers)
        self._upstream = upstream

    async def __call__(self, scope, receive, send) -> None:
        relay = asyncio.ensure_future(self.stream_response(send))
        watch = asyncio.ensure_future(_client_gone(receive))
        try:
            await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            relay.cancel()
            watch.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
            await self.body_iterator.aclose()
            await self._upstream.aclose()
        if not relay.cancelled() and relay.exception() is not None:
            if not isinstance(relay.exception(), OSError):  # OSError: the client's socket died
                raise relay.exception()


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


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON lacks and the upstream encoder refuses.
    raise ValueError(f"{name} is not a JSON value")


def _read_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whose every string is valid text (RoutingError names the field)."""
    try:
        text = raw.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259); strict: no encoded surrogates
    except UnicodeDecodeError as err:
        raise RoutingError(f"request body is not valid UTF-8: {err}") from None
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except ValueError as err:  # JSONDecodeError, or a NaN/Infinity
        raise RoutingError(f"request body is not valid JSON: {err}") from None
    except RecursionError:
        raise RoutingError("request body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise RoutingError("request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(text):
        check_text(body)
    return body


def _cap_max_tokens(body: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """With a cap: 400 for asking more (or a non-integer); asking nothing gets ``max_tokens=cap``."""
    if cap is None:
        return body
    asked = False
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RoutingError(f"'{field}' must be a positive integer", param=field)
        if value > cap:
            raise RoutingError(
                f"'{field}' is {value}; this server allows at most {cap}",
                param=field,
                code="max_tokens_exceeded",
            )
        asked = True
    return body if asked else dict(body, max_tokens=cap)


def scored_pairs(routers: Mapping[str, RouterLike], settings: ServeSettings) -> dict:
    """Router name -> :class:`~routellm_jax.serve.pairs.ScoredPair` for the served upstreams."""
    return {
        name: scored_pair(
            router,
            settings.strong.model,
            settings.weak.model,
            settings.router_strong,
            settings.router_weak,
        )
        for name, router in routers.items()
    }


async def _labelled(forwarding: Any) -> tuple[httpx.Response, str]:
    """``forward_n``'s answer with the upstream's name in place of the upstream."""
    response, up = await forwarding
    return response, up.name


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
    table = settings.upstream_table
    for name, router in routers.items():
        check = getattr(router, "model_indices", None)  # routellm_jax.api.Router's name check
        if (
            table is not None
            and callable(check)
            and callable(getattr(router, "model_quality", None))
        ):
            try:
                check(table.names)
            except ValueError as err:  # an unknown name, with the router's closest names
                raise ValueError(f"upstream table does not fit router {name!r}: {err}") from None
    metrics = ServeMetrics()
    pairs = scored_pairs(routers, settings)
    for pair in pairs.values():
        if pair.warning:
            logger.warning(pair.warning)

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

    # Added innermost first: counting sees every answer (401 and 413 too), and a request without
    # a valid key is refused before its body is read.
    app.add_middleware(_LimitBody, max_bytes=settings.max_body_bytes)
    if settings.client_api_keys:
        app.add_middleware(_RequireApiKey, keys=settings.client_api_keys)
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

    async def decide_or_raise(
        state: _State, body: dict, endpoint: str, prompts: list[str], param: str
    ) -> list[_Decision]:
        spec = parse_model(body.get("model"), list(routers))
        return await guarded(spec.router, state.decide(spec, prompts, endpoint), param)

    async def decide_n_or_raise(
        state: _State,
        spec: NModelSpec,
        body: dict,
        endpoint: str,
        prompts: list[str],
        price_texts: list[str],
        param: str,
    ) -> list[NModelDecision]:
        asked = body.get("max_tokens", body.get("max_completion_tokens"))
        output_tokens = float(asked) if isinstance(asked, int) and asked > 0 else None
        decide = state.decide_n(spec, prompts, price_texts, output_tokens, endpoint)
        return await guarded(spec.router, decide, param)

    async def guarded(router: str, decide: Any, param: str) -> Any:
        """Await a routing decision, turning its failures into the client's or the server's."""
        try:
            return await decide
        except RoutingError:
            raise
        except QueueFull as err:
            raise _Busy(f"router {router!r} is busy ({err}); retry shortly") from None
        except PromptError as err:  # the router refused this request's text: the client's fault
            message = f"router {router!r} cannot read the prompt: {err}"
            raise RoutingError(message, param) from None
        except Exception as err:  # the router itself failed: a server fault, reported as such
            logger.exception(f"router {router!r} failed")
            raise _RouterFailed(f"router {router!r} failed: {type(err).__name__}") from err

    @app.exception_handler(_RouterFailed)
    async def router_failed(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, str(exc), type_="server_error", code="router_failed")

    @app.exception_handler(_Busy)
    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return _error(
            429, str(exc), type_="rate_limit_error", code="queue_full", headers={"retry-after": "1"}
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """OpenAI chat completions, routed to the strong or weak upstream."""
        state = state_of(request)
        body = _read_json_body(await request.body())
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RoutingError("'stream' must be true or false", param="stream")
        body = _cap_max_tokens(body, settings.max_tokens)
        prompt = routing_prompt(body.get("messages"), settings.route_on)
        n_spec = parse_n_model(body.get("model"), list(routers))
        if n_spec is None:
            (decision,) = await decide_or_raise(state, body, "chat", [prompt], "messages")
            headers = decision.headers(settings)
            routed: str = decision.role
            upstream_of: Any = settings.upstream
            send = state.forward(decision.role, body, stream)

            def info(answered: str) -> dict[str, Any]:
                return {
                    "router": decision.router,
                    "threshold": decision.threshold,
                    "strong_share": decision.strong_share,
                    "win_rate": decision.win_rate,
                    "routed_to": decision.role,
                    "answered_by": answered,
                    "fallback": answered != decision.role,
                }
        else:
            # Priced on the whole conversation's text: every message is input tokens.
            price_text = routing_prompt(body.get("messages"), "conversation")
            (chosen,) = await decide_n_or_raise(
                state, n_spec, body, "chat", [prompt], [price_text], "messages"
            )
            headers = chosen.headers()
            routed = chosen.upstream.name
            upstream_of = {u.name: u for u in settings.upstream_table.upstreams}.__getitem__
            send = _labelled(state.forward_n(chosen, body, stream))

            def info(answered: str) -> dict[str, Any]:
                return {**chosen.body(), "answered_by": answered, "fallback": answered != routed}

        # A client that leaves while the upstream works (a client timeout shorter than the
        # upstream's time to first token) cancels the upstream request: nobody would read it.
        forward = asyncio.ensure_future(send)
        gone = asyncio.ensure_future(_client_gone(request.receive))
        try:
            await asyncio.wait({forward, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if gone.done() and not gone.cancelled():
            forward.cancel()
            try:
                response, _ = await forward
            except (asyncio.CancelledError, _UpstreamFailed):
                pass
            else:  # it had just answered: close it all the same
                await response.aclose()
            return Response(status_code=499)  # nginx's "client closed request", for the metrics
        try:
            response, answered = forward.result()
        except _UpstreamFailed as err:
            return _error(
                502, str(err), type_="upstream_error", code="upstream_failed", headers=headers
            )
        up = upstream_of(answered)
        model = up.model
        metrics.served.labels(model=model, role=answered, status=str(response.status_code)).inc()
        if answered != routed:
            headers["x-routellm-fallback"] = f"{routed}->{answered}"
            headers["x-routellm-model"] = model
        if response.status_code >= 400:  # a client error the upstream reported: pass it on
            return await _relay_client_error(response, up, state, headers)
        if stream:
            return _RelayResponse(
                _relay_stream(response, model, answered, up, state), response, headers
            )
        try:
            data = response.json()
        except ValueError:
            return _error(
                502,
                f"{up.describe()} returned a body that is not JSON",
                type_="upstream_error",
                code="upstream_bad_response",
                headers=headers,
            )
        if isinstance(data, dict):
            data["model"] = model
            data["routellm"] = info(answered)
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
        if len(prompts) > settings.max_queue:
            raise RoutingError(
                f"{len(prompts)} prompts in one request; this server takes at most "
                f"{settings.max_queue}",
                param="prompt",
            )
        param = "messages" if "messages" in body else "prompt"
        n_spec = parse_n_model(body.get("model"), list(routers))
        if n_spec is not None:
            texts = prompts
            if "messages" in body:
                texts = [routing_prompt(body["messages"], "conversation")]
            chosen = await decide_n_or_raise(state, n_spec, body, "route", prompts, texts, param)
            rows = [{"object": "routellm.route", **d.body()} for d in chosen]
            if single:
                return JSONResponse(rows[0], headers=chosen[0].headers())
            return JSONResponse({"object": "list", "data": rows})
        decisions = await decide_or_raise(state, body, "route", prompts, param)
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
                    **(
                        {
                            "n_model_usage": f"router-{name}:budget=<cost per request>, "
                            f"router-{name}:floor=<expected quality> or "
                            f"router-{name}:tradeoff=<lambda>",
                            "n_models": settings.upstream_table.names,
                        }
                        if name in state.n_batchers and settings.upstream_table
                        else {}
                    ),
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
                # The pair each router scores, and why when it is not the served one.
                "scored_pairs": {
                    name: {"scored": pair.describe(), "warning": pair.warning}
                    for name, pair in sorted(pairs.items())
                },
                **(
                    {"n_models": [u.describe() for u in settings.upstream_table.upstreams]}
                    if settings.upstream_table
                    else {}
                ),
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text metrics."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _relay_client_error(
    response: httpx.Response, up: Upstream | ModelUpstream, state: _State, headers: dict
) -> JSONResponse:
    """An upstream 4xx (bad parameter, auth...): same status, its error, scrubbed of keys.

    JSON is parsed before scrubbing, so a key written with ``\\u`` escapes is decoded, then
    caught; any other body is scrubbed as text and cut to 500 characters.
    """
    raw = bytearray()
    try:
        async for part in response.aiter_bytes():
            raw += part
            if len(raw) >= _MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass  # what arrived is enough to report
    finally:
        await response.aclose()
    text = raw[:_MAX_ERROR_BODY].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and "error" in data:
        data = state.redact.scrub_json(data)
    else:
        data = {
            "error": {
                "message": f"{up.describe()} answered "
                f"{response.status_code}: {state.redact(text)[:500]}",
                "type": "upstream_error",
                "param": None,
                "code": None,
            }
        }
    return JSONResponse(data, status_code=response.status_code, headers=headers)


async def _relay_stream(
    response: httpx.Response,
    model: str,
    role: str,
    up: Upstream | ModelUpstream,
    state: _State,
) -> AsyncIterator[str]:
    """Relay the upstream's server-sent events, with ``model`` set to the routed model's name.

    Completion chunks pass as the upstream wrote them; error events and lines that are not
    chunks are scrubbed of keys first.
    """
    try:
        async for line in response.aiter_lines():
            chunk = None
            if line.startswith("data:"):
                payload = line[5:].strip()
                if payload and payload != "[DONE]":
                    try:
                        chunk = json.loads(payload)
                    except (ValueError, RecursionError):
                        chunk = None
            if isinstance(chunk, dict) and "error" not in chunk:
                if "model" in chunk:
                    chunk["model"] = model
                    line = "data: " + json.dumps(chunk, separators=(",", ":"))
            elif isinstance(chunk, dict):
                chunk = state.redact.scrub_json(chunk)
                line = "data: " + json.dumps(chunk, separators=(",", ":"))
            else:
                line = state.redact(line)
            yield line + "\n"
    except httpx.HTTPError as err:
        # Headers are sent: the only way left to tell the client is an error event, which the
        # openai client raises as APIError.
        state.metrics.upstream_errors.labels(role=role, kind="stream").inc()
        message = state.redact(f"{up.describe()} broke off the stream ({type(err).__name__})")
        logger.warning(message)
        error = {"error": {"message": message, "type": "upstream_error", "code": "stream_broken"}}
        yield f"data: {json.dumps(error)}\n\n"
    finally:
        await response.aclose()
