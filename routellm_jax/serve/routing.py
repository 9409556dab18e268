"""What the server and the local client share: the router protocol, model-name parsing, prompts.

A request names its router and cost threshold in the OpenAI ``model`` field, as in RouteLLM:

* ``router-<name>-<threshold>``: call the strong model when P(strong wins) >= threshold,
  e.g. ``router-mf-minilm-0.11593``;
* ``router-<name>@<strong share>``: the threshold is looked up in the router's calibration table
  so that about that share of prompts goes to the strong model, e.g. ``router-mf-minilm@0.3``.

Router names may contain ``-`` (``mf-minilm``), so a name is matched against the routers the
server knows rather than split on the first dash.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from routellm_jax.api import check_prompt

RouteOn = Literal["last", "conversation"]
ROUTE_ON_CHOICES: tuple[str, ...] = ("last", "conversation")


@runtime_checkable
class RouterLike(Protocol):
    """The part of :class:`routellm_jax.api.Router` that serving uses.

    ``win_rate`` returns P(strong beats weak) per prompt, shape [n]; ``threshold_for_share`` turns
    a wanted share of strong calls into a threshold through the router's calibration table.
    ``routellm_jax.api.Router`` and ``routellm_jax.serve.testing.HashRouter`` both fit.

    Example:
        >>> from routellm_jax.serve.testing import HashRouter
        >>> isinstance(HashRouter("fake"), RouterLike)
        True
    """

    name: str

    def win_rate(
        self, prompts: Sequence[str], strong: str | None = None, weak: str | None = None
    ) -> np.ndarray: ...

    def threshold_for_share(
        self, share: float, strong: str | None = None, weak: str | None = None
    ) -> float: ...


class RoutingError(ValueError):
    """A request that cannot be routed; ``param`` names the offending request field.

    Example:
        >>> RoutingError("unknown router 'x'", param="model").param
        'model'
    """

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.param = param
        self.code = code


@dataclasses.dataclass(frozen=True)
class RouteSpec:
    """A parsed ``model`` field: which router, and the threshold or strong share asked for.

    Example:
        >>> RouteSpec("mf-minilm", strong_share=0.3).threshold is None
        True
    """

    router: str
    threshold: float | None = None
    strong_share: float | None = None

    def resolve_threshold(
        self, router: RouterLike, strong: str | None = None, weak: str | None = None
    ) -> float:
        """The threshold to compare win rates with (a share goes through calibration).

        ``strong``/``weak`` pick the pair's calibration table in multi-model routers.
        """
        if self.threshold is not None:
            return self.threshold
        assert self.strong_share is not None
        try:
            if strong is None and weak is None:
                threshold = float(router.threshold_for_share(self.strong_share))
            else:
                threshold = float(router.threshold_for_share(self.strong_share, strong, weak))
        except Exception as err:  # the router's own reason (no calibration table, ...) goes back
            raise RoutingError(
                f"router {self.router!r} cannot turn strong share {self.strong_share} into a "
                f"threshold: {err}",
                param="model",
            ) from err
        if not math.isfinite(threshold):
            raise RoutingError(
                f"router {self.router!r} gave a non-finite threshold for share {self.strong_share}",
                param="model",
            )
        return threshold


def _parse_unit_float(text: str, what: str, model: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RoutingError(
            f"model {model!r}: {what} {text!r} is not a number", param="model"
        ) from None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise RoutingError(
            f"model {model!r}: {what} {value} is out of range; it must lie in [0, 1]",
            param="model",
        )
    return value


def parse_model(model: Any, routers: Sequence[str]) -> RouteSpec:
    """Parse ``router-<name>-<threshold>`` or ``router-<name>@<share>`` against known router names.

    Raises :class:`RoutingError` (a 400 for the server) for an unknown router, a missing or
    non-numeric threshold, or one outside [0, 1].

    Example:
        >>> parse_model("router-mf-minilm-0.11593", ["mf-minilm"])
        RouteSpec(router='mf-minilm', threshold=0.11593, strong_share=None)
        >>> parse_model("router-mf-minilm@0.3", ["mf-minilm"])
        RouteSpec(router='mf-minilm', threshold=None, strong_share=0.3)
    """
    if not isinstance(model, str) or not model:
        raise RoutingError("'model' must be a non-empty string", param="model")
    form = "'router-<name>-<threshold>' or 'router-<name>@<strong share>'"
    if not model.startswith("router-"):
        raise RoutingError(
            f"model {model!r} is not a router model; use {form} (routers: {sorted(routers)})",
            param="model",
        )
    rest = model[len("router-") :]
    # Longest known name first, so "mf-minilm" wins over a router called "mf".
    for name in sorted(routers, key=len, reverse=True):
        if not rest.startswith(name):
            continue
        tail = rest[len(name) :]
        if tail.startswith("@"):
            return RouteSpec(name, strong_share=_parse_unit_float(tail[1:], "strong share", model))
        if tail.startswith("-") and len(tail) > 1:
            return RouteSpec(name, threshold=_parse_unit_float(tail[1:], "threshold", model))
        if tail == "":
            raise RoutingError(
                f"model {model!r} names router {name!r} but no threshold; use {form}",
                param="model",
            )
    raise RoutingError(
        f"model {model!r}: unknown router; this server has {sorted(routers)} (use {form})",
        param="model",
    )


def _child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_text(value: Any, where: str = "") -> None:
    """Raise :class:`RoutingError` naming the first string in ``value`` that is not valid text.

    ``value`` is JSON-like (dicts, lists, strings, numbers...); every string and object key must
    encode as UTF-8. JSON may carry unpaired UTF-16 surrogates (``"\\ud800"``), which tokenizers
    and UTF-8 encoders reject; checked here, at the request boundary, they are a 400 naming the
    field instead of a failure inside a batch shared with other requests. ``where`` is the path
    of ``value`` itself ("" for a request body).

    Example:
        >>> check_text({"messages": [{"role": "user", "content": "hi"}]})
        >>> try:
        ...     check_text({"messages": [{"role": "user", "content": "hi \\ud800"}]})
        ... except RoutingError as err:
        ...     print(err.param, "|", err)
        messages[0].content | messages[0].content: not valid Unicode text (unpaired surrogate '\\ud800' at character 3)
    """
    # Iterative (a deeply nested body must not exhaust the stack), in document order.
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        try:
            if isinstance(item, str):
                check_prompt(item, path or "the value")
            elif isinstance(item, Mapping):
                children = []
                for key, child in item.items():
                    if isinstance(key, str):
                        check_prompt(key, f"a key of {path or 'the body'}")
                    children.append((child, _child_path(path, str(key))))
                stack.extend(reversed(children))
            elif isinstance(item, (list, tuple)):
                stack.extend(
                    (child, f"{path}[{i}]") for i, child in reversed(list(enumerate(item)))
                )
        except ValueError as err:
            raise RoutingError(str(err), param=path or None) from None


def _text_of(content: Any, where: str) -> str:
    """The text of one message's content: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise RoutingError(
                    f"{where}.content[{j}] must be an object with a 'type'", param="messages"
                )
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise RoutingError(
                        f"{where}.content[{j}].text must be a string", param="messages"
                    )
                texts.append(part["text"])
        return "\n".join(texts)
    raise RoutingError(
        f"{where}.content must be a string or a list of content parts", param="messages"
    )


def validate_messages(messages: Any) -> list[Mapping[str, Any]]:
    """Check the OpenAI ``messages`` shape and return it; :class:`RoutingError` names the fault.

    Example:
        >>> validate_messages([{"role": "user", "content": "hi"}])
        [{'role': 'user', 'content': 'hi'}]
    """
    if not isinstance(messages, list) or not messages:
        raise RoutingError("'messages' must be a non-empty list of messages", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RoutingError(f"messages[{i}] must be an object", param="messages")
        if not isinstance(message.get("role"), str):
            raise RoutingError(f"messages[{i}].role must be a string", param="messages")
        _text_of(message.get("content"), f"messages[{i}]")
    return messages


def routing_prompt(messages: Any, route_on: RouteOn = "last") -> str:
    """The text a router scores: the last user message, or the whole conversation's text.

    ``conversation`` joins every message's text with blank lines (the routers were trained on
    single prompts; this gives them the whole context in reading order).

    Example:
        >>> routing_prompt([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        ...                 {"role": "user", "content": "c"}])
        'c'
    """
    messages = validate_messages(messages)
    if route_on == "conversation":
        text = "\n\n".join(
            t for i, m in enumerate(messages) if (t := _text_of(m.get("content"), f"messages[{i}]"))
        )
    elif route_on == "last":
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        if not users:
            raise RoutingError(
                "no message with role 'user' to route on (route_on='last')", param="messages"
            )
        i = users[-1]
        text = _text_of(messages[i].get("content"), f"messages[{i}]")
    else:
        raise ValueError(f"route_on must be one of {ROUTE_ON_CHOICES}, got {route_on!r}")
    if not text.strip():
        raise RoutingError("the routed message has no text to route on", param="messages")
    return text


def choose_strong(win_rate: float, threshold: float) -> bool:
    """RouteLLM's rule: the strong model when P(strong wins) >= threshold.

    Example:
        >>> choose_strong(0.4, 0.3), choose_strong(0.2, 0.3)
        (True, False)
    """
    return bool(win_rate >= threshold)
