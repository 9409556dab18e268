"""Serving among N models: the upstream table, the policy model names and the decision headers.

An upstream table (JSON) lists the models a server may call, each with its endpoint and price::

    {
      "output_tokens": 264,
      "upstreams": [
        {"name": "gpt-4-1106-preview", "base_url": "https://api.openai.com/v1",
         "api_key_env": "OPENAI_API_KEY", "model": "gpt-4-1106-preview",
         "price": {"input_per_1k": 0.01, "output_per_1k": 0.03}},
        {"name": "claude-2.1", "base_url": "https://example.com/v1", "api_key_env": "CLAUDE_KEY",
         "price": {"input_per_1k": 0.008, "output_per_1k": 0.024}},
        {"name": "mixtral-8x7b-instruct-v0.1", "base_url": "http://127.0.0.1:8000/v1",
         "price": {"per_call": 0.0002}}
      ]
    }

``name`` is the model's name in the router's model table (what it scores), ``model`` the name
sent upstream (default: ``name``), ``api_key_env`` the environment variable holding the key
(never the key itself; optional for keyless local servers), ``price`` as in
:func:`routellm_jax.eval.policy.price_from_json`. ``output_tokens`` prices requests that set no
``max_tokens`` (default 264).

A request selects the N-model policy by its ``model`` field: ``router-<name>:budget=<cost>``
(highest expected quality costing at most that per request), ``router-<name>:floor=<q>``
(cheapest model whose expected quality reaches ``q``), ``router-<name>:tradeoff=<lambda>``, or
``router-<name>:spend=<cost per 1,000 requests>``: the trade-off policy with lambda moved online
so that realised spend per 1,000 requests stays at that target
(:class:`routellm_jax.serve.budget.SpendController`); the router chooses among every model of the
table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from routellm_jax.eval.policy import (
    DEFAULT_OUTPUT_TOKENS,
    ModelPrice,
    Policy,
    PriceError,
    choose,
    cost_table,
    estimate_input_tokens,
    explain_choice,
    price_from_json,
)
from routellm_jax.serve.routing import RoutingError

# Model-name suffix -> policy kind. A batch budget has no meaning for one request, so it is not here;
# ``spend`` is the trade-off policy under the online spend controller.
POLICY_NAMES: dict[str, str] = {
    "budget": "budget",
    "floor": "quality_floor",
    "tradeoff": "tradeoff",
    "spend": "tradeoff",
}
_FIELDS = ("name", "base_url", "api_key_env", "model", "price")


class UpstreamTableError(ValueError):
    """An upstream table that cannot be used; the message names the file and the field."""


def endpoint_host(base_url: str) -> str:
    """Host and port of an upstream's base URL: what errors and logs name, never its path or
    credentials.

    Example:
        >>> endpoint_host("https://user:key@api.example.com:8443/v1")
        'api.example.com:8443'
    """
    url = httpx.URL(base_url)
    return f"{url.host}:{url.port}" if url.port else url.host


@dataclasses.dataclass(frozen=True)
class ModelUpstream:
    """One model of the table: router-table ``name``, upstream ``model``, endpoint, key, price.

    Example:
        >>> ModelUpstream("a", "a-v1", "http://127.0.0.1:9/v1", ModelPrice(per_call=1.0)).describe()
        "upstream 'a-v1' at 127.0.0.1:9"
    """

    name: str
    model: str
    base_url: str
    price: ModelPrice
    api_key: str | None = dataclasses.field(default=None, repr=False)

    @property
    def host(self) -> str:
        """Host and port of the base URL (what errors name; never the path or credentials)."""
        return endpoint_host(self.base_url)

    def describe(self) -> str:
        """How errors and logs name this upstream: model and host (never the key)."""
        return f"upstream {self.model!r} at {self.host}"


@dataclasses.dataclass(frozen=True)
class UpstreamTable:
    """The models a server may route among (order kept), and the default output tokens.

    Example:
        >>> t = UpstreamTable((ModelUpstream("a", "a", "http://h:1/v1", ModelPrice(per_call=2.0)),
        ...                    ModelUpstream("b", "b", "http://h:2/v1", ModelPrice(per_call=1.0))))
        >>> t.names
        ['a', 'b']
    """

    upstreams: tuple[ModelUpstream, ...]
    output_tokens: float = DEFAULT_OUTPUT_TOKENS
    source: str = "upstream table"  # what errors name: the file it was read from

    def __post_init__(self) -> None:
        names = [u.name for u in self.upstreams]
        if len(names) < 2:
            raise UpstreamTableError("an upstream table needs at least two models")
        if len(set(names)) != len(names):
            raise UpstreamTableError(f"upstream table: names repeat: {names}")

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.upstreams]

    def locate(self, name: str) -> str:
        """Where a model's entry is, for errors: ``FILE: upstreams[i].name``."""
        return f"{self.source}: upstreams[{self.names.index(name)}].name"

    def secrets(self) -> list[str | None]:
        """Every key of the table (for the server's redactor)."""
        return [u.api_key for u in self.upstreams]

    def costs(self, prompt_texts: Sequence[str], output_tokens: float | None) -> np.ndarray:
        """``[n, m]`` cost of each model on each request (input tokens estimated from the text)."""
        tokens = self.output_tokens if output_tokens is None else output_tokens
        return cost_table(
            [u.price for u in self.upstreams], estimate_input_tokens(prompt_texts), tokens
        )


def _string(entry: Mapping[str, Any], field: str, where: str, required: bool) -> str | None:
    value = entry.get(field)
    if value is None:
        if required:
            raise UpstreamTableError(f"{where}.{field}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise UpstreamTableError(f"{where}.{field}: must be a non-empty string, got {value!r}")
    return value


def upstream_table_from_json(
    data: Any, source: str, environ: Mapping[str, str] | None = None
) -> UpstreamTable:
    """An :class:`UpstreamTable` from parsed JSON (module docstring); ``source`` names the file
    in errors, ``environ`` (default ``os.environ``) holds the keys named by ``api_key_env``.

    Example:
        >>> t = upstream_table_from_json({"upstreams": [
        ...     {"name": "a", "base_url": "http://h:1/v1", "price": 0.01},
        ...     {"name": "b", "base_url": "http://h:2/v1", "price": {"per_call": 0.001}}]}, "t.json")
        >>> t.names, t.upstreams[1].price.per_call
        (['a', 'b'], 0.001)
    """
    environ = os.environ if environ is None else environ
    if not isinstance(data, Mapping):
        raise UpstreamTableError(f"{source}: expected a JSON object with an 'upstreams' list")
    unknown = sorted(set(data) - {"upstreams", "output_tokens"})
    if unknown:
        raise UpstreamTableError(f"{source}: unknown field(s) {unknown}")
    entries = data.get("upstreams")
    if not isinstance(entries, list) or len(entries) < 2:
        raise UpstreamTableError(f"{source}: 'upstreams' must be a list of at least two models")
    output_tokens = data.get("output_tokens", DEFAULT_OUTPUT_TOKENS)
    if (
        isinstance(output_tokens, bool)
        or not isinstance(output_tokens, (int, float))
        or not math.isfinite(output_tokens)
        or output_tokens < 0
    ):
        raise UpstreamTableError(f"{source}: output_tokens must be a number >= 0")
    upstreams = []
    for i, entry in enumerate(entries):
        where = f"{source}: upstreams[{i}]"
        if not isinstance(entry, Mapping):
            raise UpstreamTableError(f"{where}: must be an object")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise UpstreamTableError(f"{where}: unknown field(s) {unknown}; known: {list(_FIELDS)}")
        name = _string(entry, "name", where, True)
        base_url = _string(entry, "base_url", where, True)
        if not base_url.startswith(("http://", "https://")):
            raise UpstreamTableError(f"{where}.base_url: must start with http:// or https://")
        model = _string(entry, "model", where, False) or name
        if "price" not in entry:
            raise UpstreamTableError(f"{where}.price: missing")
        try:
            price = price_from_json(entry["price"], f"{where}.price")
        except PriceError as err:
            raise UpstreamTableError(str(err)) from None
        key_env = _string(entry, "api_key_env", where, False)
        key = None
        if key_env is not None:
            key = environ.get(key_env)
            if not key:
                raise UpstreamTableError(
                    f"{where}.api_key_env: environment variable {key_env} is not set"
                )
        upstreams.append(ModelUpstream(name, model, base_url, price, key))
    try:
        return UpstreamTable(tuple(upstreams), float(output_tokens), source)
    except UpstreamTableError as err:
        raise UpstreamTableError(f"{source}: {err}") from None


def read_upstream_table(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> UpstreamTable:
    """The upstream table of a JSON file; errors name the file and field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UpstreamTableError(f"{path}: no such upstream table") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UpstreamTableError(f"{path}: cannot read ({err})") from None
    except ValueError as err:
        raise UpstreamTableError(f"{path}: not valid JSON ({err})") from None
    return upstream_table_from_json(data, str(path), environ)


@dataclasses.dataclass(frozen=True)
class NModelSpec:
    """A parsed N-model ``model`` field: which router and which policy.

    Example:
        >>> NModelSpec("irt", Policy("budget", 0.01)).policy.kind
        'budget'
    """

    router: str
    policy: Policy
    # ``:spend=`` names: the target per 1,000 requests; the policy's lambda is the controller's.
    spend_per_1k: float | None = None


def parse_n_model(model: Any, routers: Sequence[str]) -> NModelSpec | None:
    """``router-<name>:<policy>=<value>`` -> :class:`NModelSpec`; None for any other form (the
    two-model names), :class:`RoutingError` for a policy name or value that is wrong.

    Example:
        >>> parse_n_model("router-irt-mix-minilm:floor=0.8", ["irt-mix-minilm"]).policy
        Policy(kind='quality_floor', value=0.8, resolution=2000)
        >>> parse_n_model("router-irt-mix-minilm:spend=3.5", ["irt-mix-minilm"]).spend_per_1k
        3.5
        >>> parse_n_model("router-irt-mix-minilm@0.3", ["irt-mix-minilm"]) is None
        True
    """
    if not isinstance(model, str) or not model.startswith("router-") or ":" not in model:
        return None
    head, _, tail = model[len("router-") :].rpartition(":")
    form = f"router-<name>:<policy>=<value> with policy one of {sorted(POLICY_NAMES)}"
    if head not in routers:
        raise RoutingError(
            f"model {model!r}: unknown router {head!r}; this server has {sorted(routers)} "
            f"(use {form})",
            param="model",
        )
    kind, eq, text = tail.partition("=")
    if not eq or kind not in POLICY_NAMES:
        raise RoutingError(f"model {model!r}: use {form}", param="model")
    try:
        value = float(text)
        if kind == "spend":
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"a spend target per 1,000 requests must be > 0, got {text}")
            return NModelSpec(head, Policy("tradeoff", 0.0), spend_per_1k=value)
        return NModelSpec(head, Policy(POLICY_NAMES[kind], value))
    except ValueError as err:
        raise RoutingError(f"model {model!r}: {err}", param="model") from None


@dataclasses.dataclass
class NModelDecision:
    """One N-model choice: the chosen upstream, its expected quality and cost, and why."""

    router: str
    policy: Policy
    upstream: ModelUpstream
    quality: float
    cost: float
    within_budget: bool
    candidates: dict[str, float]
    fallback: ModelUpstream | None
    router_s: float
    # ``:spend=`` names: the target, and the controller's realised spend (per 1,000 requests).
    spend_target_per_1k: float | None = None
    spend_realised_per_1k: float | None = None

    @property
    def reason(self) -> str:
        return explain_choice(self.policy, self.within_budget)

    def headers(self) -> dict[str, str]:
        """The ``x-routellm-*`` headers saying which model was chosen and why."""
        spend = {}
        if self.spend_target_per_1k is not None:
            spend["x-routellm-spend-target"] = repr(self.spend_target_per_1k)
        if self.spend_realised_per_1k is not None:
            spend["x-routellm-spend-realised"] = repr(self.spend_realised_per_1k)
        return {
            **spend,
            "server-timing": f"router;dur={self.router_s * 1000:.3f}",
            "x-routellm-router": self.router,
            "x-routellm-policy": self.policy.describe(),
            "x-routellm-routed-to": self.upstream.name,
            "x-routellm-model": self.upstream.model,
            "x-routellm-expected-quality": repr(self.quality),
            "x-routellm-cost": repr(self.cost),
            "x-routellm-within-budget": "true" if self.within_budget else "false",
            "x-routellm-reason": self.reason,
        }

    def body(self) -> dict[str, Any]:
        """The same, as the ``routellm`` field of a JSON answer."""
        return {
            "router": self.router,
            "policy": self.policy.describe(),
            "routed_to": self.upstream.name,
            "model": self.upstream.model,
            "expected_quality": self.quality,
            "cost": self.cost,
            "within_budget": self.within_budget,
            "reason": self.reason,
            "candidates": self.candidates,
            "spend_target_per_1k": self.spend_target_per_1k,
            "spend_realised_per_1k": self.spend_realised_per_1k,
        }


def decide_n_model(
    spec: NModelSpec,
    table: UpstreamTable,
    quality_row: Sequence[float],
    price_text: str,
    output_tokens: float | None,
    router_s: float,
) -> NModelDecision:
    """The policy's choice for one request from its quality row (one value per table model), and
    the fallback: the policy's choice among the other models.

    Example:
        >>> t = UpstreamTable((ModelUpstream("a", "a", "http://h:1/v1", ModelPrice(per_call=2.0)),
        ...                    ModelUpstream("b", "b", "http://h:2/v1", ModelPrice(per_call=1.0))))
        >>> d = decide_n_model(NModelSpec("r", Policy("budget", 1.5)), t, [0.9, 0.6], "hi", None, 0.0)
        >>> d.upstream.name, d.fallback.name, d.within_budget
        ('b', 'a', True)
    """
    quality = np.asarray(quality_row, np.float64)[None, :]
    cost = table.costs([price_text], output_tokens)
    first = choose(quality, cost, spec.policy)
    j = int(first.model_index[0])
    rest = [k for k in range(quality.shape[1]) if k != j]
    second = choose(quality[:, rest], cost[:, rest], spec.policy)
    fallback = table.upstreams[rest[int(second.model_index[0])]]
    return NModelDecision(
        router=spec.router,
        policy=spec.policy,
        upstream=table.upstreams[j],
        quality=float(first.quality[0]),
        cost=float(first.cost[0]),
        within_budget=bool(first.within_budget[0]),
        candidates={n: float(q) for n, q in zip(table.names, quality[0])},
        fallback=fallback,
        router_s=router_s,
        spend_target_per_1k=spec.spend_per_1k,
    )
