"""Choosing one model per prompt among N candidates, from quality estimates and prices.

Pure numpy on two ``[n_prompts, n_models]`` tables: ``quality`` (a router's per-model estimate,
see :meth:`routellm_jax.api.Router.model_quality` for what it means per architecture, or a
benchmark's correctness for an oracle) and ``cost`` (what calling each model on each prompt
costs, from :class:`ModelPrice` and token counts). Four policies:

* ``budget`` (per request): the highest expected quality whose cost is within the budget; a
  prompt on which no model is affordable gets the cheapest one and ``within_budget=False``.
* ``batch_budget``: the assignment maximising the *sum* of expected quality subject to the total
  cost of the batch staying within the budget (a multiple-choice knapsack), solved exactly by
  dynamic programming on costs rounded *up* to ``budget / resolution`` units, so the spend never
  exceeds the budget and the answer is optimal for the rounded costs (exact when costs are
  multiples of the unit). If even the cheapest assignment does not fit, every prompt gets its
  cheapest model and ``within_budget=False``.
* ``quality_floor``: the cheapest model whose expected quality reaches the floor; where none
  does, the most likely model (quality first, as :func:`routellm_jax.models.irt.cheapest_adequate`).
* ``tradeoff`` (``lambda >= 0``): maximise ``quality - lambda * cost / max_cost`` per prompt,
  cost taken relative to the dearest candidate on that prompt so lambda has no currency unit:
  0 buys the best model, large lambdas the cheapest.

Ties go to the cheaper model, then to the earlier column.

Example:
    >>> q = np.array([[0.9, 0.7, 0.2]]); c = np.array([[10.0, 2.0, 1.0]])
    >>> choose(q, c, Policy("budget", 5.0)).model_index.tolist()
    [1]
    >>> choose(q, c, Policy("quality_floor", 0.5)).model_index.tolist()
    [1]
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

POLICIES: tuple[str, ...] = ("budget", "batch_budget", "quality_floor", "tradeoff")
# The paper's average request (routellm_jax.eval.cost): output tokens when the caller gives none.
DEFAULT_OUTPUT_TOKENS = 264
# A rough tokens-per-character ratio of English text under BPE tokenizers (about 4 characters a
# token); used only to price prompts when the caller gives no token counts.
CHARS_PER_TOKEN = 4.0
BATCH_RESOLUTION = 2000


class PriceError(ValueError):
    """A price table that cannot be read; the message names the file (or source) and field."""


@dataclasses.dataclass(frozen=True)
class ModelPrice:
    """What one call costs: a fixed ``per_call`` price plus per-1k-token prices (any currency,
    the same for every model of a table).

    Example:
        >>> ModelPrice(per_call=0.5, input_per_1k=1.0, output_per_1k=2.0).request_cost(1000, 2000)
        5.5
    """

    per_call: float = 0.0
    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def request_cost(self, input_tokens: Any, output_tokens: Any) -> Any:
        """Cost of a request with these token counts (floats, or arrays of them)."""
        cost = (
            self.per_call
            + np.asarray(input_tokens, np.float64) * self.input_per_1k / 1000.0
            + np.asarray(output_tokens, np.float64) * self.output_per_1k / 1000.0
        )
        return float(cost) if cost.ndim == 0 else cost


_PRICE_FIELDS = ("per_call", "input_per_1k", "output_per_1k")


def price_from_json(value: Any, where: str) -> ModelPrice:
    """A :class:`ModelPrice` from ``{"per_call": x}`` and/or ``{"input_per_1k": a,
    "output_per_1k": b}``, or a bare number (per call). Errors name ``where`` and the field.

    Example:
        >>> price_from_json({"input_per_1k": 0.01, "output_per_1k": 0.03}, "prices.json: gpt-4")
        ModelPrice(per_call=0.0, input_per_1k=0.01, output_per_1k=0.03)
        >>> price_from_json(0.002, "prices.json: small")
        ModelPrice(per_call=0.002, input_per_1k=0.0, output_per_1k=0.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"per_call": value}
    if not isinstance(value, Mapping):
        raise PriceError(
            f"{where}: a price is a number (per call) or an object with {list(_PRICE_FIELDS)}, "
            f"got {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(_PRICE_FIELDS))
    if unknown:
        raise PriceError(f"{where}: unknown field(s) {unknown}; known: {list(_PRICE_FIELDS)}")
    if not value:
        raise PriceError(f"{where}: no price given; use any of {list(_PRICE_FIELDS)}")
    numbers = {}
    for field, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise PriceError(f"{where}.{field}: must be a number, got {number!r}")
        if not math.isfinite(number) or number < 0:
            raise PriceError(f"{where}.{field}: must be a finite number >= 0, got {number!r}")
        numbers[field] = float(number)
    return ModelPrice(**numbers)


def prices_from_json(data: Any, source: str) -> dict[str, ModelPrice]:
    """``{model: price}`` from a JSON object ``{"<model>": <price>, ...}`` (see
    :func:`price_from_json`); ``source`` names the file in errors.

    Example:
        >>> prices_from_json({"big": 0.01, "small": {"per_call": 0.001}}, "p.json")["small"].per_call
        0.001
    """
    if not isinstance(data, Mapping) or not data:
        raise PriceError(f"{source}: expected a non-empty JSON object {{model: price}}")
    return {str(name): price_from_json(value, f"{source}: {name}") for name, value in data.items()}


def read_prices(path: str | Path) -> dict[str, ModelPrice]:
    """The price table of a JSON file (``{"<model>": <price>}``, see :func:`price_from_json`).
    Every problem is a :class:`PriceError` naming the file, and the model and field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PriceError(f"{path}: no such price file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PriceError(f"{path}: cannot read ({err})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise PriceError(f"{path}: not valid JSON ({err})") from None
    return prices_from_json(data, str(path))


def estimate_input_tokens(prompts: Sequence[str]) -> np.ndarray:
    """``[n]`` rough input token counts (``ceil(chars / 4)``, at least 1), for pricing only.

    Example:
        >>> estimate_input_tokens(["hi", "x" * 40]).tolist()
        [1.0, 10.0]
    """
    chars = np.array([len(p) for p in prompts], dtype=np.float64)
    return np.maximum(1.0, np.ceil(chars / CHARS_PER_TOKEN))


def cost_table(
    prices: Sequence[ModelPrice], input_tokens: Any, output_tokens: Any = DEFAULT_OUTPUT_TOKENS
) -> np.ndarray:
    """``[n, m]`` cost of each model (column) on each prompt (row).

    Example:
        >>> cost_table([ModelPrice(per_call=1.0), ModelPrice(input_per_1k=1.0)], [1000, 2000], 0).tolist()
        [[1.0, 1.0], [1.0, 2.0]]
    """
    inp = np.asarray(input_tokens, np.float64).reshape(-1)
    out = np.broadcast_to(np.asarray(output_tokens, np.float64), inp.shape)
    columns = [
        p.per_call + inp * p.input_per_1k / 1000.0 + out * p.output_per_1k / 1000.0 for p in prices
    ]
    return np.stack(columns, axis=1) if columns else np.zeros((inp.size, 0))


@dataclasses.dataclass(frozen=True)
class Policy:
    """How to choose: ``kind`` in :data:`POLICIES` and its ``value`` (a budget per request or per
    batch, a quality floor in [0, 1], or the trade-off weight lambda >= 0).

    Example:
        >>> Policy("tradeoff", 0.5).describe()
        'tradeoff lambda=0.5'
    """

    kind: str
    value: float
    resolution: int = BATCH_RESOLUTION  # batch_budget only: cost units per budget

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.kind!r}")
        v = float(self.value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"policy {self.kind}: value must be a finite number >= 0, got {v}")
        if self.kind == "quality_floor" and v > 1:
            raise ValueError(f"policy quality_floor: a floor lies in [0, 1], got {v}")
        if self.resolution < 1:
            raise ValueError(f"policy resolution must be >= 1, got {self.resolution}")

    def describe(self) -> str:
        """A short human reading of the policy (headers, CLI output)."""
        names = {
            "budget": "budget per request",
            "batch_budget": "budget per batch",
            "quality_floor": "quality floor",
            "tradeoff": "tradeoff lambda",
        }
        return f"{names[self.kind]}={self.value:g}"


def explain_choice(policy: Policy, within_budget: bool) -> str:
    """Why the policy chose what it chose, in words (CLI output, server headers).

    Example:
        >>> explain_choice(Policy("quality_floor", 0.8), False)
        'no candidate reaches the quality floor 0.8: the most likely model'
    """
    v = f"{policy.value:g}"
    if policy.kind == "budget":
        if within_budget:
            return f"highest expected quality costing at most {v} per request"
        return f"no candidate costs at most {v}: the cheapest model"
    if policy.kind == "batch_budget":
        if within_budget:
            return f"highest total expected quality of the batch within its budget {v}"
        return f"even the cheapest models exceed the batch budget {v}: the cheapest model"
    if policy.kind == "quality_floor":
        if within_budget:
            return f"cheapest model whose expected quality reaches {v}"
        return f"no candidate reaches the quality floor {v}: the most likely model"
    return f"highest expected quality - {v} x cost relative to the dearest candidate"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """The chosen column per prompt and what it buys: ``model_index`` [n], ``quality`` [n] (the
    chosen model's estimate), ``cost`` [n], ``within_budget`` [n] bool (False where the policy's
    constraint could not be met: no affordable model, or no model reaching the floor)."""

    model_index: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    within_budget: np.ndarray


def _check_tables(quality: Any, cost: Any) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(quality, np.float64)
    c = np.asarray(cost, np.float64)
    if q.ndim != 2 or q.shape != c.shape or q.shape[1] == 0:
        raise ValueError(f"quality {q.shape} and cost {c.shape} must both be [n_prompts, n_models]")
    if not (np.isfinite(q).all() and np.isfinite(c).all()) or (c < 0).any():
        raise ValueError("quality and cost must be finite, and costs >= 0")
    return q, c


def _best(score: np.ndarray, cost: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per row, the allowed column of highest score; ties to the cheaper, then earlier, column."""
    m = score.shape[1]
    # Lexicographic key (score desc, cost asc, column asc) via a stable sort on each row.
    order = np.lexsort((np.arange(m)[None, :].repeat(len(score), 0), cost, -score), axis=1)
    ranked_allowed = np.take_along_axis(allowed, order, axis=1)
    first = np.argmax(ranked_allowed, axis=1)
    return order[np.arange(len(score)), first]


def _knapsack(q: np.ndarray, c: np.ndarray, budget: float, resolution: int) -> np.ndarray | None:
    """Exact multiple-choice knapsack on costs rounded up to ``budget / resolution``; None when
    even the cheapest assignment does not fit."""
    n, m = q.shape
    if budget <= 0:
        units = np.where(c > 0, resolution + 1, 0).astype(np.int64)
    else:
        # Round up (with a relative tolerance so exact multiples stay exact): never over budget.
        scaled = c * (resolution / budget)
        units = np.ceil(scaled - 1e-9 * np.maximum(1.0, scaled)).astype(np.int64)
    cap = resolution
    if units.min(axis=1).sum() > cap:
        return None
    neg = -np.inf
    best = np.zeros(cap + 1)  # best[b]: max total quality of the prompts so far, spending <= b
    back = np.zeros((n, cap + 1), dtype=np.int16 if m < 32_000 else np.int32)
    for i in range(n):
        cand = np.full((m, cap + 1), neg)
        for j in range(m):
            u = units[i, j]
            if u <= cap:
                cand[j, u:] = best[: cap + 1 - u] + q[i, j]
        # Ties go to the cheaper column (then the earlier one): order columns by cost first.
        order = np.lexsort((np.arange(m), c[i]))
        pick = order[np.argmax(cand[order], axis=0)]
        best = cand[pick, np.arange(cap + 1)]
        back[i] = pick
    choice = np.empty(n, dtype=np.int64)
    # best[b] is non-decreasing in b: the least b reaching the optimum spends the least.
    b = int(np.argmax(best >= best[cap] - 1e-12 * max(1.0, abs(best[cap]))))
    for i in range(n - 1, -1, -1):
        choice[i] = back[i, b]
        b -= units[i, choice[i]]
    return choice


def choose(quality: Any, cost: Any, policy: Policy) -> Assignment:
    """One model (column) per prompt (row) under ``policy`` (module docstring).

    Example:
        >>> q = np.array([[0.9, 0.5], [0.6, 0.55]]); c = np.array([[4.0, 1.0], [4.0, 1.0]])
        >>> choose(q, c, Policy("batch_budget", 5.0)).model_index.tolist()
        [0, 1]
        >>> choose(q, c, Policy("tradeoff", 0.0)).model_index.tolist()
        [0, 0]
    """
    q, c = _check_tables(quality, cost)
    n, m = q.shape
    rows = np.arange(n)
    value = float(policy.value)
    ok = np.ones(n, dtype=bool)
    if policy.kind == "budget":
        allowed = c <= value
        ok = allowed.any(axis=1)
        pick = _best(q, c, allowed)
        cheapest = _best(-c, c, np.ones_like(allowed))
        pick = np.where(ok, pick, cheapest)
    elif policy.kind == "quality_floor":
        allowed = q >= value
        ok = allowed.any(axis=1)
        pick = np.where(ok, _best(-c, c, allowed), _best(q, c, np.ones_like(allowed)))
    elif policy.kind == "tradeoff":
        dearest = np.maximum(c.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        pick = _best(q - value * c / dearest, c, np.ones((n, m), dtype=bool))
    else:  # batch_budget
        solved = _knapsack(q, c, value, policy.resolution) if n else np.zeros(0, np.int64)
        if solved is None:
            pick = _best(-c, c, np.ones((n, m), dtype=bool))
            ok = np.zeros(n, dtype=bool)
        else:
            pick = solved
    pick = pick.astype(np.int64)
    return Assignment(pick, q[rows, pick], c[rows, pick], ok)


def quality_from_strengths(strengths: Any) -> np.ndarray:
    """``[n, m]`` expected win rate of each model against the *other* candidates, from
    Bradley-Terry log strengths: ``mean over j != k of sigmoid(s_k - s_j)``. With two candidates
    it is the pair's win rate (and one minus it); it depends on which candidates are compared.

    Example:
        >>> quality_from_strengths(np.array([[0.0, 0.0, np.log(3.0)]])).round(3).tolist()
        [[0.375, 0.375, 0.75]]
    """
    s = np.asarray(strengths, np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"strengths must be [n, m] with m >= 2 models, got {s.shape}")
    diff = s[:, :, None] - s[:, None, :]  # [n, k, j]
    p = 0.5 * (1.0 + np.tanh(0.5 * diff))  # sigmoid, stable for large differences
    m = s.shape[1]
    return (p.sum(axis=2) - 0.5) / (m - 1)  # drop the j == k term (sigmoid(0) = 0.5)
