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
import numpy as np
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
from routellm_jax.eval.policy import Policy
from routellm_jax.serve.batching import MicroBatcher, QueueFull
from routellm_jax.serve.budget import (
    ControllerSettings,
    ReferenceTable,
    ShareController,
    SpendController,
    lambda_for_spend,
    reference_table,
    spend_reference_rows,
)
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
from routellm_jax.serve.tenants import (
    CALIBRATION_HEADER,
    PromptSet,
    fit_calibration,
    reference_from_calibration,
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
# so past this many distinct (router, share) pairs new ones use the calibrated threshold. The same
# bound holds for spend controllers (past it, new targets use the reference's fixed trade-off).
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

    ``strong``/``weak`` may both be left out when an ``upstream_table`` is given: the server then
    serves the N-model names only.

    Example:
        >>> s = ServeSettings(Upstream("strong", "big", "http://127.0.0.1:1/v1"),
        ...                   Upstream("weak", "small", "http://127.0.0.1:2/v1"))
        >>> s.fallback, s.retries
        ('other', 1)
    """

    strong: Upstream | None = None
    weak: Upstream | None = None
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
    # and router-<name>:spend=<target> requests keep spend per 1,000 requests at the target
    # (routellm_jax.serve.budget.SpendController); False: the reference's fixed trade-off.
    share_control: bool = True
    share_controller: ControllerSettings = ControllerSettings()
    # Prompts the spend controllers start from (the card's calibration reference set, or a file);
    # without them (and without a calibration header) :spend= names are refused.
    spend_reference: PromptSet | None = None
    # Named calibration sets a request picks by the x-routellm-calibration header
    # (routellm_jax.serve.tenants).
    calibrations: tuple[PromptSet, ...] = ()

    def __post_init__(self) -> None:
        if (self.strong is None) != (self.weak is None):
            raise ValueError("ServeSettings: give both strong and weak upstreams, or neither")
        if self.strong is None and self.upstream_table is None:
            raise ValueError(
                "ServeSettings: give strong and weak upstreams, an upstream table, or both"
            )
        if self.strong is not None and (self.strong.role != "strong" or self.weak.role != "weak"):
            raise ValueError("ServeSettings: strong/weak upstreams must have roles strong/weak")
        names = [c.name for c in self.calibrations]
        if len(set(names)) != len(names):
            raise ValueError(f"ServeSettings: calibration names repeat: {names}")
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

    @property
    def has_pair(self) -> bool:
        """Whether the two-model names are served (strong and weak upstreams are configured)."""
        return self.strong is not None

    def upstream(self, role: Role) -> Upstream:
        """The strong or weak upstream."""
        up = self.strong if role == "strong" else self.weak
        if up is None:
            raise RoutingError(_NO_PAIR, param="model")
        return up

    def describe_pair(self) -> str:
        """The strong and weak upstreams in words (logs), or that there are none."""
        if self.strong is None:
            return "no strong/weak upstreams (N-model names only)"
        return f"strong={self.strong.describe()}, weak={self.weak.describe()}"


_NO_PAIR = (
    "this server has no strong/weak upstreams, only an upstream table: name a policy "
    "(router-<name>:budget=<cost>, :floor=<quality>, :tradeoff=<lambda> or :spend=<cost per "
    "1,000 requests>)"
)


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
            ["router", "target", "calibration"],
            registry=r,
        )
        self.share_realised = Gauge(
            "routellm_share_realised",
            "Strong share of the controller's last window of decisions.",
            ["router", "target", "calibration"],
            registry=r,
        )
        self.share_threshold = Gauge(
            "routellm_share_threshold",
            "The controller's current win-rate threshold.",
            ["router", "target", "calibration"],
            registry=r,
        )
        self.score_psi = Gauge(
            "routellm_score_psi",
            "Drift gauge: population stability index of the live scores in the controller's "
            "window against the router's calibration reference (above 0.25: a warning is logged).",
            ["router", "target", "calibration"],
            registry=r,
        )
        spend_labels = ["router", "target", "calibration"]
        self.spend_target = Gauge(
            "routellm_spend_target",
            "Spend per 1,000 requests a router:spend=<target> model name asks for.",
            spend_labels,
            registry=r,
        )
        self.spend_realised = Gauge(
            "routellm_spend_realised",
            "Spend per 1,000 requests of the spend controller's last window of decisions.",
            spend_labels,
            registry=r,
        )
        self.spend_tradeoff = Gauge(
            "routellm_spend_tradeoff",
            "The spend controller's current trade-off weight (the policy's lambda).",
            spend_labels,
            registry=r,
        )
        self.spend_psi = Gauge(
            "routellm_spend_psi",
            "Drift gauge: population stability index of the live quality gaps (best candidate's "
            "expected quality less the cheapest's) in the spend controller's window against the "
            "reference prompts' (above 0.25: a warning is logged).",
            spend_labels,
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

    def __init__(
        self,
        routers: Mapping[str, RouterLike],
        settings: ServeSettings,
        metrics,
        tenant_tables: Mapping[tuple[str, str], ReferenceTable] | None = None,
    ) -> None:
        self.routers = routers
        self.settings = settings
        self.metrics: ServeMetrics = metrics
        self.pairs = scored_pairs(routers, settings)
        # (calibration name, router) -> the tenant's calibration table (fitted at start-up).
        self.tenant_tables = dict(tenant_tables or {})
        table = settings.upstream_table
        self.redact = _Redactor(
            [
                settings.strong.api_key if settings.strong else None,
                settings.weak.api_key if settings.weak else None,
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
            if name in self.pairs
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
            if up is not None
        }
        # The table's models, by name (their own label in metrics: role=<name>).
        self.table_clients = {u.name: clients_of(u) for u in (table.upstreams if table else ())}
        self._next_client = itertools.count()
        self.threshold_cache: dict[tuple[str, float, str], float] = {}
        self.controllers: dict[tuple[str, float, str], ShareController] = {}
        # Spend control: reference rows per (router, calibration name or ""), scored once in the
        # background from start-up; controllers and fixed trade-offs per (router, target, name).
        self.spend_references: dict[tuple[str, str], asyncio.Task] = {}
        self.spend_controllers: dict[tuple[str, float, str], SpendController] = {}
        self.fixed_tradeoffs: dict[tuple[str, float, str], float] = {}
        self.started = int(time.time())

    def start_spend_references(self) -> None:
        """Score the spend reference prompts (and each calibration set) for every router that
        ranks the upstream table, in the background, so the first :spend= request does not wait
        for all of it."""
        sets = {"": self.settings.spend_reference} | {c.name: c for c in self.settings.calibrations}
        for router in self.n_batchers:
            for tenant, prompt_set in sets.items():
                if prompt_set is not None:
                    task = asyncio.ensure_future(self._score_reference(router, prompt_set))
                    self.spend_references[(router, tenant)] = task

    async def _score_reference(
        self, router: str, prompt_set: PromptSet
    ) -> tuple[np.ndarray, np.ndarray]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor,
            spend_reference_rows,
            self.routers[router],
            prompt_set.prompts,
            self.settings.upstream_table,
        )

    async def spend_reference(self, router: str, tenant: str) -> tuple[np.ndarray, np.ndarray]:
        """The reference (quality, cost) rows a spend controller starts from."""
        task = self.spend_references.get((router, tenant))
        if task is None:
            raise RoutingError(
                "router-<name>:spend=<target> needs reference prompts to start from, and this "
                "server has none (start it with --spend-reference FILE, or send a "
                f"{CALIBRATION_HEADER} header naming one of its calibration sets)",
                param="model",
            )
        # Shielded: a client that leaves must not cancel the scoring every later request needs.
        return await asyncio.shield(task)

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
        for task in self.spend_references.values():
            task.cancel()
        for batcher in [*self.batchers.values(), *self.n_batchers.values()]:
            await batcher.close()
        for clients in [*self.clients.values(), *self.table_clients.values()]:
            for client in clients:
                await client.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- routing ---------------------------------------------------------------------------

    def threshold(self, spec: RouteSpec, tenant: str = "") -> float:
        """The fixed threshold of a name: as given, or the share's from the card's calibration
        table (or the named tenant's)."""
        if spec.threshold is not None:
            return spec.threshold
        key = (spec.router, spec.strong_share, tenant)
        if key not in self.threshold_cache:
            if tenant:
                table = self.tenant_tables[(tenant, spec.router)]
                self.threshold_cache[key] = table.threshold(spec.strong_share)
            else:
                pair = self.pairs[spec.router]
                self.threshold_cache[key] = spec.resolve_threshold(
                    self.routers[spec.router], pair.strong, pair.weak
                )
        return self.threshold_cache[key]

    def controller(self, spec: RouteSpec, tenant: str = "") -> ShareController | None:
        """The share controller of a ``router@share`` name (made on first use, started from the
        router's calibration table, or the named tenant's); None for fixed thresholds or with
        ``share_control`` off."""
        if spec.strong_share is None or not self.settings.share_control:
            return None
        if not 0.0 < spec.strong_share < 1.0:  # 0 and 1 need no control: none or all go strong
            return None
        key = (spec.router, spec.strong_share, tenant)
        if key not in self.controllers:
            if len(self.controllers) >= MAX_SHARE_CONTROLLERS:
                return None
            s = self.settings
            router = self.routers[spec.router]

            def at(share: float) -> float:
                return RouteSpec(spec.router, strong_share=share).resolve_threshold(
                    router, s.router_strong, s.router_weak
                )

            if tenant:
                reference = self.tenant_tables[(tenant, spec.router)]
            else:
                reference = reference_table(at)
            self.controllers[key] = ShareController(
                spec.strong_share, reference, s.share_controller
            )
        return self.controllers[key]

    def _export(self, spec: RouteSpec, controller: ShareController, tenant: str) -> None:
        labels = {"router": spec.router, "target": repr(spec.strong_share), "calibration": tenant}
        self.metrics.share_target.labels(**labels).set(controller.target)
        self.metrics.share_realised.labels(**labels).set(controller.realised_share)
        self.metrics.share_threshold.labels(**labels).set(controller.threshold)
        self.metrics.score_psi.labels(**labels).set(controller.psi)

    async def decide(
        self, spec: RouteSpec, prompts: list[str], endpoint: str, tenant: str = ""
    ) -> list[_Decision]:
        """One decision per prompt; all prompts enter the router's queue at once, or none."""
        if spec.router not in self.batchers:
            raise RoutingError(_NO_PAIR, param="model")
        if tenant and (tenant, spec.router) not in self.tenant_tables:
            raise RoutingError(
                f"calibration {tenant!r} has no table for router {spec.router!r}",
                param=CALIBRATION_HEADER,
            )
        controller = self.controller(spec, tenant)
        threshold = self.threshold(spec, tenant) if controller is None else controller.threshold
        start = time.perf_counter()
        win_rates = await self.batchers[spec.router].submit_many(prompts)
        router_s = time.perf_counter() - start
        decisions = []
        for win_rate in win_rates:
            self.metrics.router_latency.labels(router=spec.router).observe(router_s)
            if controller is not None:  # the threshold this decision uses, then the update
                threshold = controller.threshold
                strong = controller.decide(win_rate)
                self._export(spec, controller, tenant)
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
        tenant: str = "",
    ) -> list[NModelDecision]:
        """One N-model decision per prompt (:mod:`.n_model`); all prompts queue at once.
        ``:spend=`` names use the spend controller's trade-off, then update it."""
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
        controller, fixed = None, None
        if spec.spend_per_1k is not None:
            ref_quality, ref_cost = await self.spend_reference(spec.router, tenant)
            controller = self.spend_controller(spec, tenant, ref_quality, ref_cost)
            if controller is None:
                fixed = self.fixed_tradeoff(spec, tenant, ref_quality, ref_cost)
        start = time.perf_counter()
        rows = await batcher.submit_many(prompts)
        router_s = time.perf_counter() - start
        decisions = []
        for row, text in zip(rows, price_texts):
            self.metrics.router_latency.labels(router=spec.router).observe(router_s)
            realised = None
            if controller is not None:  # the trade-off this decision uses, then the update
                lam = controller.tradeoff
                controller.decide(row, table.costs([text], output_tokens)[0])
                realised = controller.realised_per_1k
                self._export_spend(spec, controller, tenant)
                spec = dataclasses.replace(spec, policy=Policy("tradeoff", lam))
            elif fixed is not None:
                spec = dataclasses.replace(spec, policy=Policy("tradeoff", fixed))
            d = decide_n_model(spec, table, row, text, output_tokens, router_s)
            d.spend_realised_per_1k = realised
            self.metrics.routed.labels(
                router=spec.router, model=d.upstream.model, role=d.upstream.name, endpoint=endpoint
            ).inc()
            decisions.append(d)
        return decisions

    def spend_controller(
        self, spec: NModelSpec, tenant: str, ref_quality: np.ndarray, ref_cost: np.ndarray
    ) -> SpendController | None:
        """The spend controller of a ``:spend=`` name (made on first use from the reference
        rows); None with ``share_control`` off or past :data:`MAX_SHARE_CONTROLLERS`."""
        if not self.settings.share_control:
            return None
        key = (spec.router, spec.spend_per_1k, tenant)
        if key not in self.spend_controllers:
            if len(self.spend_controllers) >= MAX_SHARE_CONTROLLERS:
                return None
            self.spend_controllers[key] = SpendController(
                spec.spend_per_1k, ref_quality, ref_cost, self.settings.share_controller
            )
        return self.spend_controllers[key]

    def fixed_tradeoff(
        self, spec: NModelSpec, tenant: str, ref_quality: np.ndarray, ref_cost: np.ndarray
    ) -> float:
        """The trade-off meeting the spend target on the reference, never moved."""
        key = (spec.router, spec.spend_per_1k, tenant)
        if key not in self.fixed_tradeoffs:
            self.fixed_tradeoffs[key] = lambda_for_spend(
                ref_quality, ref_cost, spec.spend_per_1k / 1000.0
            )
        return self.fixed_tradeoffs[key]

    def _export_spend(self, spec: NModelSpec, controller: SpendController, tenant: str) -> None:
        labels = {"router": spec.router, "target": repr(spec.spend_per_1k), "calibration": tenant}
        self.metrics.spend_target.labels(**labels).set(controller.target_per_1k)
        self.metrics.spend_realised.labels(**labels).set(controller.realised_per_1k)
        self.metrics.spend_tradeoff.labels(**labels).set(controller.tradeoff)
        self.metrics.spend_psi.labels(**labels).set(controller.psi)

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
    """Router name -> :class:`~routellm_jax.serve.pairs.ScoredPair` for the served upstreams
    (none when the server has no strong/weak upstreams)."""
    if not settings.has_pair:
        return {}
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


def fit_tenant_tables(
    routers: Mapping[str, RouterLike],
    pairs: Mapping[str, ScoredPair],
    calibrations: tuple[PromptSet, ...],
) -> dict[tuple[str, str], ReferenceTable]:
    """(calibration name, router) -> the calibration table of the tenant's prompts on the pair
    each router serves (:func:`routellm_jax.serve.tenants.fit_calibration`), for the share names;
    scored once, at start-up."""
    tables = {}
    for prompt_set in calibrations:
        for name, pair in pairs.items():
            rates = routers[name].win_rate(
                list(prompt_set.prompts), strong=pair.strong, weak=pair.weak
            )
            table = fit_calibration(rates, prompt_set, pair.strong or "", pair.weak or "")
            tables[(prompt_set.name, name)] = reference_from_calibration(table)
    return tables


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
            for model in table.names:
                try:
                    check([model])
                except ValueError as err:  # an unknown name, with the router's closest names
                    raise ValueError(
                        f"{table.locate(model)}: does not fit router {name!r}: {err}"
                    ) from None
    metrics = ServeMetrics()
    pairs = scored_pairs(routers, settings)
    for pair in pairs.values():
        if pair.warning:
            logger.warning(pair.warning)
    tenant_tables = fit_tenant_tables(routers, pairs, settings.calibrations)
    calibration_names = sorted(c.name for c in settings.calibrations)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _State(routers, settings, metrics, tenant_tables)
        state.start_spend_references()
        app.state.routellm = state
        logger.info(f"routing with {sorted(routers)}: {settings.describe_pair()}")
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(title="routellm-jax router", lifespan=lifespan)
    app.state.metrics = metrics

    def state_of(request: Request) -> _State:
        return request.app.state.routellm

    def tenant_of(request: Request) -> str:
        """The calibration set the request names in its header ("" for the card's own)."""
        name = request.headers.get(CALIBRATION_HEADER)
        if name is None:
            return ""
        if name not in calibration_names:
            have = calibration_names or "none"
            raise RoutingError(
                f"{CALIBRATION_HEADER}: unknown calibration {name!r}; this server has {have}",
                param=CALIBRATION_HEADER,
                code="unknown_calibration",
            )
        return name

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
        state: _State, body: dict, endpoint: str, prompts: list[str], param: str, tenant: str
    ) -> list[_Decision]:
        spec = parse_model(body.get("model"), list(routers))
        return await guarded(spec.router, state.decide(spec, prompts, endpoint, tenant), param)

    async def decide_n_or_raise(
        state: _State,
        spec: NModelSpec,
        body: dict,
        endpoint: str,
        prompts: list[str],
        price_texts: list[str],
        param: str,
        tenant: str,
    ) -> list[NModelDecision]:
        asked = body.get("max_tokens", body.get("max_completion_tokens"))
        output_tokens = float(asked) if isinstance(asked, int) and asked > 0 else None
        decide = state.decide_n(spec, prompts, price_texts, output_tokens, endpoint, tenant)
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
        tenant = tenant_of(request)
        body = _read_json_body(await request.body())
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RoutingError("'stream' must be true or false", param="stream")
        body = _cap_max_tokens(body, settings.max_tokens)
        prompt = routing_prompt(body.get("messages"), settings.route_on)
        n_spec = parse_n_model(body.get("model"), list(routers))
        if n_spec is None:
            (decision,) = await decide_or_raise(state, body, "chat", [prompt], "messages", tenant)
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
                state, n_spec, body, "chat", [prompt], [price_text], "messages", tenant
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
        tenant = tenant_of(request)
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
            chosen = await decide_n_or_raise(
                state, n_spec, body, "route", prompts, texts, param, tenant
            )
            rows = [{"object": "routellm.route", **d.body()} for d in chosen]
            if single:
                return JSONResponse(rows[0], headers=chosen[0].headers())
            return JSONResponse({"object": "list", "data": rows})
        decisions = await decide_or_raise(state, body, "route", prompts, param, tenant)
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
                    **(
                        {
                            "usage": f"router-{name}-<threshold> or router-{name}@<strong share>",
                            "strong_model": settings.strong.model,
                            "weak_model": settings.weak.model,
                        }
                        if settings.has_pair
                        else {}
                    ),
                    **(
                        {
                            "n_model_usage": f"router-{name}:budget=<cost per request>, "
                            f"router-{name}:floor=<expected quality>, "
                            f"router-{name}:tradeoff=<lambda> or "
                            f"router-{name}:spend=<cost per 1,000 requests>",
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
                "strong": settings.strong.describe() if settings.strong else None,
                "weak": settings.weak.describe() if settings.weak else None,
                "calibrations": [c.describe() for c in settings.calibrations],
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
