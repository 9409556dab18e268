"""Cost of routing operating points, from per-model token prices.

Defaults follow the paper (App. D): gpt-4-1106-preview $10 per 1M input tokens and $30 per 1M output
tokens, Mixtral-8x7B $0.24 per 1M either way, and an average request of 95 input and 264 output
tokens (so GPT-4 costs $24.7 per 1M tokens blended). With a strong-call share ``c`` the expected cost
per request is ``c * cost(strong) + (1 - c) * cost(weak)``; it is reported relative to sending
everything to the strong model, and the saving is ``1 - relative``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from routellm_jax.data.model_names import UnknownModelError, default_table
from routellm_jax.eval.metrics import RouterMetrics


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M input and per 1M output tokens.

    Example:
        >>> ModelPrice(10.0, 30.0).request_cost(95, 264)
        0.00887
    """

    input_per_m: float
    output_per_m: float

    def request_cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD for one request of the given token counts."""
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6


# The paper's prices, keyed by canonical model name (routellm_jax.data.model_names).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4-1106-preview": ModelPrice(10.0, 30.0),
    "mixtral-8x7b-instruct-v0.1": ModelPrice(0.24, 0.24),
}
DEFAULT_INPUT_TOKENS = 95
DEFAULT_OUTPUT_TOKENS = 264


def parse_price(spec: str) -> tuple[str, ModelPrice]:
    """Parse ``MODEL=IN,OUT`` (USD per 1M tokens), the CLI's ``--price`` syntax.

    Example:
        >>> parse_price("claude-3-opus=15,75")
        ('claude-3-opus', ModelPrice(input_per_m=15.0, output_per_m=75.0))
    """
    name, sep, rest = spec.rpartition("=")
    parts = rest.split(",")
    if not sep or not name or len(parts) != 2:
        raise ValueError(f"price {spec!r}: expected MODEL=IN,OUT (USD per 1M tokens)")
    try:
        price = ModelPrice(float(parts[0]), float(parts[1]))
    except ValueError:
        raise ValueError(f"price {spec!r}: IN and OUT must be numbers") from None
    if price.input_per_m < 0 or price.output_per_m < 0:
        raise ValueError(f"price {spec!r}: prices must be >= 0")
    return name, price


@dataclass(frozen=True)
class CostModel:
    """Expected per-request cost of a strong/weak pair.

    Example:
        >>> cm = cost_model("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")
        >>> round(cm.relative_cost(0.5), 4)
        0.5049
    """

    strong_model: str
    weak_model: str
    strong_price: ModelPrice
    weak_price: ModelPrice
    input_tokens: float = DEFAULT_INPUT_TOKENS
    output_tokens: float = DEFAULT_OUTPUT_TOKENS

    @property
    def strong_request_cost(self) -> float:
        return self.strong_price.request_cost(self.input_tokens, self.output_tokens)

    @property
    def weak_request_cost(self) -> float:
        return self.weak_price.request_cost(self.input_tokens, self.output_tokens)

    def request_cost(self, strong_share: float | np.ndarray) -> float | np.ndarray:
        """Expected USD per request when a share ``strong_share`` goes to the strong model."""
        c = np.asarray(strong_share, dtype=np.float64)
        out = c * self.strong_request_cost + (1.0 - c) * self.weak_request_cost
        return float(out) if out.ndim == 0 else out

    def relative_cost(self, strong_share: float | np.ndarray) -> float | np.ndarray:
        """Cost relative to routing everything to the strong model."""
        if self.strong_request_cost <= 0:
            raise ValueError(f"strong model {self.strong_model!r} has zero cost: no relative cost")
        c = np.asarray(strong_share, dtype=np.float64)
        out = np.asarray(self.request_cost(c)) / self.strong_request_cost
        return float(out) if out.ndim == 0 else out

    def saving(self, strong_share: float) -> float:
        """``1 - relative_cost``: the share of the all-strong bill saved (nan for nan)."""
        if strong_share is None or math.isnan(strong_share):
            return float("nan")
        return 1.0 - float(self.relative_cost(strong_share))


def _lookup_price(name: str, table: Mapping[str, ModelPrice]) -> ModelPrice | None:
    if name in table:
        return table[name]

    models = default_table()
    try:
        canon = models.canonical(name)
    except UnknownModelError:
        return None
    if canon in table:
        return table[canon]
    known = models.price(canon)  # the model table's own price, when it has one
    return ModelPrice(*known) if known else None


def cost_model(
    strong: str,
    weak: str,
    prices: Mapping[str, ModelPrice] | None = None,
    *,
    input_tokens: float = DEFAULT_INPUT_TOKENS,
    output_tokens: float = DEFAULT_OUTPUT_TOKENS,
) -> CostModel:
    """A cost model for the pair. Prices are looked up by name, then by canonical name, in
    ``prices`` (default: the paper's table), then in the canonical model table's price fields;
    a model without a price is an error.

    Example:
        >>> cost_model("a", "b", {"a": ModelPrice(1, 1), "b": ModelPrice(0, 0)}).relative_cost(0.3)
        0.3
    """
    table = dict(DEFAULT_PRICES if prices is None else prices)
    found = {m: _lookup_price(m, table) for m in (strong, weak)}
    missing = [m for m, p in found.items() if p is None]
    if missing:
        raise KeyError(
            f"no price for model(s) {missing}; known: {sorted(table)} and the model table's "
            "priced models (pass prices, or --price MODEL=IN,OUT on the command line)"
        )
    return CostModel(strong, weak, found[strong], found[weak], input_tokens, output_tokens)


def cost_report(metrics: RouterMetrics, cm: CostModel, shares: np.ndarray) -> dict:
    """Cost figures of one router: relative cost of each curve point, and at CPT(50%)/CPT(80%)
    the relative cost, the saving, and the paper's Table-6 ratio of strong calls of the random
    router (whose CPT(x) is x) to this router's.

    Example:
        >>> from routellm_jax.eval.metrics import compute_metrics, random_expected_curve
        >>> c = random_expected_curve(0.8, 0.6)
        >>> cost_report(compute_metrics(c, 0.8, 0.6), cost_model("a", "b", {"a": ModelPrice(1, 1),
        ...     "b": ModelPrice(0, 0)}), c.strong_share)["saving_at_cpt_50"]
        0.5
    """
    out: dict = {
        "strong_request_cost_usd": cm.strong_request_cost,
        "weak_request_cost_usd": cm.weak_request_cost,
        "input_tokens": cm.input_tokens,
        "output_tokens": cm.output_tokens,
        "relative_cost_per_point": [float(x) for x in np.atleast_1d(cm.relative_cost(shares))],
    }
    for level in (0.5, 0.8):
        share = metrics.cpt.get(level, float("nan"))
        key = round(level * 100)
        nan = share is None or math.isnan(share)
        out[f"relative_cost_at_cpt_{key}"] = None if nan else float(cm.relative_cost(share))
        out[f"saving_at_cpt_{key}"] = None if nan else cm.saving(share)
        out[f"strong_call_ratio_random_vs_router_at_cpt_{key}"] = (
            None if nan or share <= 0 else level / share
        )
    return out
