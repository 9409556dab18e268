"""Strong/weak labels of battles, as the paper trains pair-specific routers (bert, causal_llm).

A battle between a model of the strong set and one of the weak set becomes one example, oriented
so the strong side comes first, labelled ``LABEL_STRONG`` / ``LABEL_WEAK`` / ``LABEL_TIE``. Battles
within one side, or with a model in neither set, carry no routing signal and are dropped. The
strong/weak sets usually come from Elo tiers (``data/elo.py``: tiers 0-1 strong, tier 2 weak).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from routellm_jax.data.records import OUTCOME_A, OUTCOME_B, OUTCOME_TIE, ComparisonTable

LABEL_STRONG = 0  # the strong model won
LABEL_WEAK = 1  # the weak model won
LABEL_TIE = 2


def orient(
    table: ComparisonTable, strong: Collection[str], weak: Collection[str]
) -> tuple[ComparisonTable, np.ndarray]:
    """Keep strong-vs-weak battles, put the strong model in ``model_a``, return labels.

    Returns ``(oriented_table, labels[n] int8)``.

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "mixtral", "gpt-4", "a")])
        >>> orient(t, {"gpt-4"}, {"mixtral"})[1].tolist()
        [1]
    """
    strong, weak = set(strong), set(weak)
    if strong & weak:
        raise ValueError(f"models in both the strong and weak sets: {sorted(strong & weak)}")
    a_strong = np.array([m in strong for m in table.model_a], dtype=bool)
    b_strong = np.array([m in strong for m in table.model_b], dtype=bool)
    a_weak = np.array([m in weak for m in table.model_a], dtype=bool)
    b_weak = np.array([m in weak for m in table.model_b], dtype=bool)
    keep_ab = a_strong & b_weak  # already oriented
    keep_ba = a_weak & b_strong  # needs a swap
    index = np.flatnonzero(keep_ab | keep_ba)
    sub = table.take(index)
    swap = keep_ba[index]
    model_a = np.where(swap, sub.model_b, sub.model_a)
    model_b = np.where(swap, sub.model_a, sub.model_b)
    outcome = sub.outcome.copy()
    outcome[swap & (sub.outcome == OUTCOME_A)] = OUTCOME_B
    outcome[swap & (sub.outcome == OUTCOME_B)] = OUTCOME_A
    labels = np.full(len(sub), LABEL_TIE, dtype=np.int8)
    labels[outcome == OUTCOME_A] = LABEL_STRONG
    labels[outcome == OUTCOME_B] = LABEL_WEAK
    assert np.all((outcome != OUTCOME_TIE) | (labels == LABEL_TIE))
    oriented = ComparisonTable(
        prompt=sub.prompt,
        model_a=model_a.astype(object),
        model_b=model_b.astype(object),
        outcome=outcome,
        weight=sub.weight,
        source=sub.source,
    )
    return oriented, labels


def pair_preference_sums(
    comparisons: ComparisonTable, strong: str, weak: str
) -> dict[str, list[float]]:
    """Per prompt, ``[weighted strong wins, total weight]`` over the battles of exactly this pair
    (a tie counts half a win), in first-seen prompt order; other pairs are ignored.

    Example:
        >>> from routellm_jax.data.records import Comparison
        >>> t = ComparisonTable.from_records([Comparison("q", "s", "w", OUTCOME_A),
        ...                                   Comparison("q", "w", "s", OUTCOME_TIE)])
        >>> pair_preference_sums(t, "s", "w")
        {'q': [1.5, 2.0]}
    """
    sums: dict[str, list[float]] = {}
    c = comparisons
    for prompt, a, b, outcome, weight in zip(c.prompt, c.model_a, c.model_b, c.outcome, c.weight):
        if {a, b} != {strong, weak}:
            continue
        if outcome == OUTCOME_A:
            won = 1.0 if a == strong else 0.0
        elif outcome == OUTCOME_B:
            won = 1.0 if b == strong else 0.0
        else:
            won = 0.5
        acc = sums.setdefault(prompt, [0.0, 0.0])
        acc[0] += float(weight) * won
        acc[1] += float(weight)
    return sums
