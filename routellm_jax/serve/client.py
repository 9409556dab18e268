"""Route locally, no server: a drop-in for ``openai.OpenAI().chat.completions.create``.

Like RouteLLM's ``Controller``: the ``model`` argument names the router and threshold
(``router-<name>-<threshold>``) or strong share (``router-<name>@<share>``); the prompt is scored
in-process and the call goes to the strong or weak client with ``model`` set to that client's model
name. The answer is the upstream's own response object (stream or not), with ``model`` naming the
routed model.

Example::

    import openai
    from routellm_jax.serve import Controller

    controller = Controller(
        routers=["mf-minilm"],
        strong_model="gpt-4o",
        weak_model="llama-3.1-8b-instruct",
        strong_client=openai.OpenAI(),
        weak_client=openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none"),
    )
    reply = controller.chat.completions.create(
        model="router-mf-minilm@0.3", messages=[{"role": "user", "content": "Prove Fermat's..."}]
    )
    print(reply.model, reply.choices[0].message.content)

Among N models, give the server's upstream table (a :class:`~routellm_jax.serve.n_model.
UpstreamTable` or the path of its JSON file) and, optionally, its clients by name (``None``
builds ``openai.OpenAI(base_url=..., api_key=...)`` from the table); the strong/weak arguments
may then be left out. Name a policy: ``model="router-irt-mix-minilm:budget=0.004"`` (or
``:floor=0.8``, ``:tradeoff=0.5``), or a budget target per 1,000 requests,
``router-irt-mix-minilm:spend=3.0``, which needs ``spend_reference`` prompts to start from::

    controller = Controller(
        routers=["irt-mix-minilm"],
        upstream_table="upstreams.json",
        spend_reference=reference_prompts,  # e.g. a sample of your traffic
    )
    controller.chat.completions.create(model="router-irt-mix-minilm:spend=3.0", messages=...)

``router-<name>@<share>`` and ``:spend=`` names run the same online controllers as the server
(:mod:`routellm_jax.serve.budget`) unless ``share_control=False``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, Literal

from routellm_jax.eval.policy import Policy
from routellm_jax.serve.budget import (
    ControllerSettings,
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
    parse_n_model,
    read_upstream_table,
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

log = logging.getLogger(__name__)

Role = Literal["strong", "weak"]


@dataclasses.dataclass(frozen=True)
class RouteDecision:
    """One routing decision: the router, threshold used, win rate and the chosen model.

    Example:
        >>> RouteDecision("mf-minilm", 0.5, 0.62, "strong", "gpt-4o").model
        'gpt-4o'
    """

    router: str
    threshold: float
    win_rate: float
    role: Role
    model: str


def load_routers(
    routers: Mapping[str, RouterLike] | Sequence[str | RouterLike], precision: str | None = None
) -> dict:
    """Name -> router: loads names/paths with ``routellm_jax.api.load``, keeps router objects.

    ``precision`` (``"float32"``/``"bfloat16"``) goes to ``api.load`` for the names it loads.

    Example:
        >>> from routellm_jax.serve.testing import HashRouter
        >>> sorted(load_routers([HashRouter("a"), HashRouter("b")]))
        ['a', 'b']
    """
    if isinstance(routers, Mapping):
        out = dict(routers)
    else:
        out = {}
        for item in routers:
            if isinstance(item, str):
                from routellm_jax import api  # heavy (JAX); only when a name must be loaded

                router = api.load(item, precision=precision)
            else:
                router = item
            if router.name in out:
                raise ValueError(f"two routers are named {router.name!r}")
            out[router.name] = router
    if not out:
        raise ValueError("give at least one router")
    for name, router in out.items():
        if not isinstance(router, RouterLike):
            raise TypeError(f"router {name!r} lacks name/win_rate/threshold_for_share")
    return out


def _retryable_errors() -> tuple[type[BaseException], ...]:
    """Errors after which the other model may answer: connection, timeout, 5xx, rate limit."""
    try:
        import openai
    except ImportError:  # duck-typed clients without the openai package: nothing is known
        return ()
    return (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)


class _RoutedStream:
    """Wraps an upstream stream so each chunk names the routed model; otherwise the same."""

    def __init__(self, stream: Any, model: str) -> None:
        self._stream = stream
        self._model = model

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._stream:
            yield _set_model(chunk, self._model)

    def __enter__(self) -> _RoutedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:  # response, etc. of the wrapped stream
        return getattr(self._stream, name)


class _AsyncRoutedStream:
    def __init__(self, stream: Any, model: str) -> None:
        self._stream = stream
        self._model = model

    async def __aiter__(self):
        async for chunk in self._stream:
            yield _set_model(chunk, self._model)

    async def __aenter__(self) -> _AsyncRoutedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _set_model(obj: Any, model: str) -> Any:
    if isinstance(obj, dict):
        obj["model"] = model
    elif hasattr(obj, "model"):
        try:
            obj.model = model
        except (AttributeError, TypeError, ValueError):  # a frozen object: leave it as it came
            pass
    return obj


class Controller:
    """Routes chat completions between two OpenAI-style clients, in-process.

    ``routers``: names or paths for ``routellm_jax.api.load``, router objects, or a mapping
    name -> router. ``strong_client``/``weak_client``: anything with
    ``.chat.completions.create(**kwargs)`` (``openai.OpenAI``, ``openai.AsyncOpenAI`` for
    ``acreate``); ``None`` builds ``openai.OpenAI()`` from the environment. ``fallback="other"``
    sends a call whose client failed (connection, timeout, 5xx, 429, after the client's own
    retries) to the other model. ``model_counts[router][model]`` counts decisions.

    ``upstream_table`` (an :class:`~routellm_jax.serve.n_model.UpstreamTable` or the path of the
    server's JSON table) enables the N-model names; ``strong_model``/``weak_model`` may then be
    left out. ``spend_reference``: prompts the ``:spend=`` names' controllers start from (at most
    :data:`~routellm_jax.serve.budget.SPEND_REFERENCE_PROMPTS` of them, evenly spaced, are
    scored on first use).
    """

    def __init__(
        self,
        routers: Mapping[str, RouterLike] | Sequence[str | RouterLike],
        strong_model: str | None = None,
        weak_model: str | None = None,
        strong_client: Any = None,
        weak_client: Any = None,
        *,
        route_on: RouteOn = "last",
        fallback: Literal["other", "error"] = "error",
        router_strong: str | None = None,
        router_weak: str | None = None,
        upstream_table: UpstreamTable | str | os.PathLike[str] | None = None,
        table_clients: Mapping[str, Any] | None = None,
        share_control: bool = True,
        share_controller: ControllerSettings | None = None,
        spend_reference: Sequence[str] | None = None,
    ) -> None:
        if isinstance(upstream_table, (str, os.PathLike)):
            upstream_table = read_upstream_table(upstream_table)  # errors name file and field
        if (strong_model is None) != (weak_model is None):
            raise ValueError("Controller: give both strong_model and weak_model, or neither")
        if strong_model is None and upstream_table is None:
            raise ValueError(
                "Controller: give strong_model and weak_model, an upstream_table, or both"
            )
        if route_on not in ROUTE_ON_CHOICES:
            raise ValueError(f"route_on must be one of {ROUTE_ON_CHOICES}, got {route_on!r}")
        if fallback not in ("other", "error"):
            raise ValueError(f"fallback must be 'other' or 'error', got {fallback!r}")
        self.routers = load_routers(routers)
        self.models: dict[Role, str] = {"strong": strong_model, "weak": weak_model}
        self._clients: dict[Role, Any] = {"strong": strong_client, "weak": weak_client}
        self.route_on = route_on
        self.fallback = fallback
        self.router_strong = router_strong
        self.router_weak = router_weak
        # The pair each router scores: the served models where its table has them (aliases
        # included), else its card's pair, with a warning naming the pair actually scored.
        self.scored_pairs: dict[str, ScoredPair] = {
            name: scored_pair(router, strong_model, weak_model, router_strong, router_weak)
            for name, router in self.routers.items()
            if strong_model is not None
        }
        for pair in self.scored_pairs.values():
            if pair.warning:
                log.warning("%s", pair.warning)
        self.model_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._lock = threading.Lock()
        self._thresholds: dict[tuple[str, float], float] = {}
        self.upstream_table = upstream_table
        self._table_clients: dict[str, Any] = dict(table_clients or {})
        if upstream_table is not None:
            unknown = sorted(set(self._table_clients) - set(upstream_table.names))
            if unknown:
                raise ValueError(f"table_clients {unknown} are not in the upstream table")
        self.share_control = share_control
        self.share_controller = share_controller or ControllerSettings()
        self.controllers: dict[tuple[str, float], ShareController] = {}
        self.spend_reference = tuple(spend_reference or ())
        self._spend_rows: dict[str, tuple[Any, Any]] = {}  # router -> reference (quality, cost)
        self.spend_controllers: dict[tuple[str, float], SpendController] = {}
        # The OpenAI SDK's shape: controller.chat.completions.create(...)
        self.chat = SimpleNamespace(
            completions=SimpleNamespace(create=self.completion, acreate=self.acompletion)
        )

    # --- routing ---------------------------------------------------------------------------

    def _spec(
        self,
        model: str | None,
        router: str | None,
        threshold: float | None,
        strong_share: float | None,
    ) -> RouteSpec:
        if model is not None:
            return parse_model(model, list(self.routers))
        if router is None or (threshold is None) == (strong_share is None):
            raise RoutingError(
                "give model='router-<name>-<threshold>' (or '@<share>'), or router= with exactly "
                "one of threshold= and strong_share="
            )
        if router not in self.routers:
            raise RoutingError(f"unknown router {router!r}; known: {sorted(self.routers)}")
        value = threshold if threshold is not None else strong_share
        if not 0.0 <= float(value) <= 1.0:
            raise RoutingError(
                f"{'threshold' if threshold is not None else 'strong_share'} "
                f"{value} is out of range; it must lie in [0, 1]"
            )
        return RouteSpec(router, threshold=threshold, strong_share=strong_share)

    def _threshold(self, spec: RouteSpec) -> float:
        if spec.threshold is not None:
            return spec.threshold
        key = (spec.router, spec.strong_share)
        with self._lock:
            if key not in self._thresholds:
                pair = self.scored_pairs[spec.router]
                self._thresholds[key] = spec.resolve_threshold(
                    self.routers[spec.router], pair.strong, pair.weak
                )
            return self._thresholds[key]

    def _controller(self, spec: RouteSpec) -> ShareController | None:
        """The online share controller of a ``@share`` spec (None: a fixed threshold)."""
        share = spec.strong_share
        if share is None or not self.share_control or not 0.0 < share < 1.0:
            return None
        key = (spec.router, share)
        with self._lock:
            if key not in self.controllers:
                router = self.routers[spec.router]

                def at(x: float) -> float:
                    return RouteSpec(spec.router, strong_share=x).resolve_threshold(
                        router, self.router_strong, self.router_weak
                    )

                self.controllers[key] = ShareController(
                    share, reference_table(at), self.share_controller
                )
            return self.controllers[key]

    def _route_n(self, spec: NModelSpec, messages: Any, prompt: str) -> NModelDecision:
        table = self.upstream_table
        if table is None:
            raise RoutingError(
                "this Controller has no upstream_table: give one to route among N models",
                param="model",
            )
        scorer = getattr(self.routers[spec.router], "model_quality", None)
        if not callable(scorer):
            raise RoutingError(
                f"router {spec.router!r} scores one strong/weak pair only and cannot rank N models",
                param="model",
            )
        row = [float(x) for x in scorer([prompt], table.names)[0]]
        price_text = (
            messages if isinstance(messages, str) else routing_prompt(messages, "conversation")
        )
        realised = None
        if spec.spend_per_1k is not None:
            controller, lam = self._spend(spec)
            if controller is not None:
                with self._lock:  # the trade-off this decision uses, then the update
                    lam = controller.tradeoff
                    controller.decide(row, table.costs([price_text], None)[0])
                    realised = controller.realised_per_1k
            spec = dataclasses.replace(spec, policy=Policy("tradeoff", lam))
        decision = decide_n_model(spec, table, row, price_text, None, 0.0)
        decision.spend_realised_per_1k = realised
        with self._lock:
            self.model_counts[spec.router][decision.upstream.model] += 1
        return decision

    def _spend(self, spec: NModelSpec) -> tuple[SpendController | None, float]:
        """The spend controller of a ``:spend=`` name (None with ``share_control`` off) and the
        reference's trade-off for its target, from the reference prompts scored on first use."""
        if not self.spend_reference:
            raise RoutingError(
                "router-<name>:spend=<target> needs reference prompts to start from: give the "
                "Controller spend_reference=[...]",
                param="model",
            )
        with self._lock:
            if spec.router not in self._spend_rows:
                self._spend_rows[spec.router] = spend_reference_rows(
                    self.routers[spec.router], self.spend_reference, self.upstream_table
                )
            quality, cost = self._spend_rows[spec.router]
            key = (spec.router, spec.spend_per_1k)
            if not self.share_control:
                return None, lambda_for_spend(quality, cost, spec.spend_per_1k / 1000.0)
            if key not in self.spend_controllers:
                self.spend_controllers[key] = SpendController(
                    spec.spend_per_1k, quality, cost, self.share_controller
                )
            controller = self.spend_controllers[key]
            return controller, controller.tradeoff

    def route(
        self,
        messages: Any,
        *,
        model: str | None = None,
        router: str | None = None,
        threshold: float | None = None,
        strong_share: float | None = None,
    ) -> RouteDecision | NModelDecision:
        """Decide without calling a model. ``messages``: a chat message list or a prompt string.
        An N-model name (``router-<name>:budget=...``) gives an
        :class:`~routellm_jax.serve.n_model.NModelDecision` (chosen upstream, expected quality,
        cost, reason).

        Text that is not valid Unicode (an unpaired surrogate) raises :class:`RoutingError`
        naming its place (``messages[1].content``) before the router sees it.
        """
        n_spec = parse_n_model(model, list(self.routers)) if model is not None else None
        spec = None if n_spec is not None else self._spec(model, router, threshold, strong_share)
        check_text(messages, "messages")
        prompt = messages if isinstance(messages, str) else routing_prompt(messages, self.route_on)
        if not prompt.strip():
            raise RoutingError("the prompt has no text to route on")
        if n_spec is not None:
            return self._route_n(n_spec, messages, prompt)
        if not self.scored_pairs:
            raise RoutingError(
                "this Controller has no strong/weak models, only an upstream table: name a "
                "policy (router-<name>:budget=..., :floor=..., :tradeoff=... or :spend=...)",
                param="model",
            )
        chosen = self.routers[spec.router]
        win_rate = float(
            chosen.win_rate(
                [prompt],
                strong=self.scored_pairs[spec.router].strong,
                weak=self.scored_pairs[spec.router].weak,
            )[0]
        )
        controller = self._controller(spec)
        if controller is None:
            t = self._threshold(spec)
            strong = choose_strong(win_rate, t)
        else:
            with self._lock:  # the threshold this decision uses, then the controller's update
                t = controller.threshold
                strong = controller.decide(win_rate)
        role: Role = "strong" if strong else "weak"
        with self._lock:
            self.model_counts[spec.router][self.models[role]] += 1
        return RouteDecision(spec.router, t, win_rate, role, self.models[role])

    # --- calling ---------------------------------------------------------------------------

    def _client(self, role: Role) -> Any:
        if self._clients[role] is None:
            import openai

            self._clients[role] = openai.OpenAI()
        return self._clients[role]

    def _table_client(self, up: ModelUpstream) -> Any:
        if self._table_clients.get(up.name) is None:
            import openai

            self._table_clients[up.name] = openai.OpenAI(
                base_url=up.base_url, api_key=up.api_key or "none"
            )
        return self._table_clients[up.name]

    def _order(self, decision: RouteDecision | NModelDecision) -> list[tuple[Any, str]]:
        """(client getter, model name) to try in turn: the chosen model, then the fallback."""
        if isinstance(decision, NModelDecision):
            ups = [decision.upstream]
            if self.fallback == "other" and decision.fallback is not None:
                ups.append(decision.fallback)
            return [(lambda u=u: self._table_client(u), u.model) for u in ups]
        roles: list[Role] = [decision.role]
        if self.fallback == "other":
            roles.append("weak" if decision.role == "strong" else "strong")
        return [(lambda r=r: self._client(r), self.models[r]) for r in roles]

    def completion(
        self,
        *,
        messages: Any,
        model: str | None = None,
        router: str | None = None,
        threshold: float | None = None,
        strong_share: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``chat.completions.create``: route, then call the chosen client with its model name.

        Every string in ``messages`` and ``kwargs`` must be valid Unicode text (RoutingError
        names the first that is not), since the client would fail to encode it anyway.
        """
        check_text(kwargs)
        decision = self.route(
            messages, model=model, router=router, threshold=threshold, strong_share=strong_share
        )
        order = self._order(decision)
        errors = _retryable_errors()
        for i, (client, name) in enumerate(order):
            try:
                result = client().chat.completions.create(model=name, messages=messages, **kwargs)
            except errors:
                if i + 1 == len(order):
                    raise
                continue
            if kwargs.get("stream"):
                return _RoutedStream(result, name)
            return _set_model(result, name)
        raise AssertionError("unreachable")

    async def acompletion(
        self,
        *,
        messages: Any,
        model: str | None = None,
        router: str | None = None,
        threshold: float | None = None,
        strong_share: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async ``create`` (``chat.completions.acreate``); the router runs in a worker thread.

        Use ``openai.AsyncOpenAI`` clients (sync clients work but block the event loop).
        """
        check_text(kwargs)
        decision = await asyncio.to_thread(
            self.route,
            messages,
            model=model,
            router=router,
            threshold=threshold,
            strong_share=strong_share,
        )
        order = self._order(decision)
        errors = _retryable_errors()
        for i, (client, name) in enumerate(order):
            try:
                result = client().chat.completions.create(model=name, messages=messages, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except errors:
                if i + 1 == len(order):
                    raise
                continue
            if kwargs.get("stream"):
                if hasattr(result, "__aiter__"):
                    return _AsyncRoutedStream(result, name)
                return _RoutedStream(result, name)
            return _set_model(result, name)
        raise AssertionError("unreachable")
