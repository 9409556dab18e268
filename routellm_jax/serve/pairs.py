"""Which model pair a router scores when it serves two upstream models.

A model-aware router (``mf``, ``irt``, ``sw_ranking``) scores any pair of its model table, so the
server and the in-process ``Controller`` score the pair they actually serve when its names can be
found there: as given, or through the model-name aliases of :mod:`routellm_jax.data.model_names`
(``meta-llama/Llama-2-70b-chat-hf`` is ``llama-2-70b-chat``). A served model the table does not
hold (``gpt-4o`` for a router trained before it existed) cannot be scored; the router then scores
its card's default pair, and :attr:`ScoredPair.warning` says so, naming the pair it scores and how
to choose another (``router_strong``/``router_weak``, ``--router-strong``/``--router-weak``).
A pair-specific router (``bert``, ``causal_llm``) always scores its own pair; the warning says so
when the served models are others.

Example:
    >>> from types import SimpleNamespace
    >>> router = SimpleNamespace(name="irt", models=["gpt-4-1106-preview", "claude-2.1",
    ...     "mixtral-8x7b-instruct-v0.1"], default_strong="gpt-4-1106-preview",
    ...     default_weak="mixtral-8x7b-instruct-v0.1")
    >>> scored_pair(router, "claude-2.1", "mixtral-8x7b-instruct-v0.1").scored
    ('claude-2.1', 'mixtral-8x7b-instruct-v0.1')
    >>> pair = scored_pair(router, "gpt-4o", "mixtral-8x7b-instruct-v0.1")
    >>> pair.scored, pair.strong
    (('gpt-4-1106-preview', 'mixtral-8x7b-instruct-v0.1'), None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from routellm_jax.data import model_names


@dataclasses.dataclass(frozen=True)
class ScoredPair:
    """The pair a router scores for a served pair.

    ``strong``/``weak`` are what to pass to ``win_rate`` and ``threshold_for_share`` (``None``:
    the router's default pair); ``scored`` names the pair actually scored (``None`` entries when
    the router does not say); ``warning`` is empty when the served models are the scored ones.
    """

    strong: str | None
    weak: str | None
    scored: tuple[str | None, str | None]
    warning: str = ""

    def describe(self) -> str:
        """``"STRONG vs WEAK"`` of the scored pair (a response header's value)."""
        return f"{self.scored[0] or '?'} vs {self.scored[1] or '?'}"


def table_name(name: str, models: Sequence[str]) -> str | None:
    """``name`` as it appears in a router's model table (directly or through an alias), else None.

    Example:
        >>> table_name("meta-llama/Llama-2-70b-chat-hf", ["llama-2-70b-chat"])
        'llama-2-70b-chat'
        >>> table_name("gpt-4o", ["gpt-4-1106-preview"]) is None
        True
    """
    if name in models:
        return name
    try:
        canonical = model_names.canonical(name)
    except model_names.UnknownModelError:
        return None
    return canonical if canonical in models else None


def scored_pair(
    router: Any,
    served_strong: str,
    served_weak: str,
    router_strong: str | None = None,
    router_weak: str | None = None,
) -> ScoredPair:
    """The pair ``router`` scores while serving ``served_strong`` / ``served_weak``.

    ``router_strong``/``router_weak`` (names in the router's table) are used as given when set;
    otherwise the served names are looked up in the table (see the module docstring).
    """
    name = getattr(router, "name", "?")
    default = (getattr(router, "default_strong", None), getattr(router, "default_weak", None))
    if router_strong is not None or router_weak is not None:
        scored = (router_strong or default[0], router_weak or default[1])
        return ScoredPair(router_strong, router_weak, scored)
    models = list(getattr(router, "models", None) or ())
    served = (served_strong, served_weak)
    if not models:  # pair-specific: its own pair, whatever is served
        known = [m for m in default if m is not None]
        same = len(known) == 2 and all(
            table_name(s, [d]) is not None for s, d in zip(served, default)
        )
        warning = ""
        if known and not same:
            warning = (
                f"router {name!r} scores only the pair it was trained on, {default[0]} vs "
                f"{default[1]}; its win rates are that pair's, not {served[0]} vs {served[1]}"
            )
        return ScoredPair(None, None, default, warning)
    mapped = [table_name(s, models) for s in served]
    if None not in mapped and mapped[0] != mapped[1]:
        return ScoredPair(mapped[0], mapped[1], (mapped[0], mapped[1]))
    missing = [s for s, m in zip(served, mapped) if m is None]
    why = (
        f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in its model table "
        f"({len(models)} models)"
        if missing
        else f"{served[0]} and {served[1]} are the same model in its table"
    )
    warning = (
        f"router {name!r}: {why}, so it scores its default pair {default[0]} vs {default[1]} "
        f"for {served[0]} vs {served[1]}; choose the pair it scores with router_strong/"
        "router_weak (--router-strong/--router-weak), e.g. the nearest models of its table"
    )
    return ScoredPair(None, None, default, warning)
