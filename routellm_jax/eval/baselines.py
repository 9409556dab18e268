"""Routers that need no training, so every learned router is seen against them. Each gives win
rates ``P(strong wins)`` in [0, 1], one per prompt.

* ``random``: i.i.d. uniform, from a seed (the paper's random baseline);
* ``oracle``: from the benchmark's own labels (evaluation only): ``0.5 + 0.5 * gain / max|gain|``
  with ``gain = strong - weak``, so it routes strong exactly where the strong model is better at any
  threshold in (0.5, 1]; the paper's oracle *curve* is :func:`routellm_jax.eval.metrics.oracle_curve`;
* ``prompt_length``: longer prompt -> more likely strong, ``chars / (chars + scale)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from routellm_jax.eval.benchmarks import Benchmark
from routellm_jax.eval.metrics import random_win_rates

BASELINES = ("random", "oracle", "prompt_length")


def random_router(prompts: Sequence[str], seed: int = 0) -> np.ndarray:
    """Uniform win rates from ``np.random.default_rng(seed)`` (independent of the prompt text).

    Example:
        >>> random_router(["a", "b"], seed=0).shape
        (2,)
    """
    return random_win_rates(len(prompts), seed)


def oracle_win_rates(benchmark: Benchmark) -> np.ndarray:
    """Label-derived win rates for every benchmark row (see module docstring).

    Example:
        >>> b = Benchmark("t", np.array(["a", "b", "c"], dtype=object), np.array([1.0, 0.0, 1.0]),
        ...               np.array([0.0, 1.0, 1.0]), "s", "w")
        >>> oracle_win_rates(b).tolist()
        [1.0, 0.0, 0.5]
    """
    gain = benchmark.strong_scores - benchmark.weak_scores
    scale = float(np.max(np.abs(gain)))
    if scale == 0:
        return np.full(len(benchmark), 0.5)
    return 0.5 + 0.5 * gain / scale


def oracle_router(benchmark: Benchmark) -> Callable[[Sequence[str]], np.ndarray]:
    """A prompts -> win rates function answering from the benchmark's labels (a repeated prompt
    gets the mean of its rows); prompts outside the benchmark are an error.

    Example:
        >>> b = Benchmark("t", np.array(["a"], dtype=object), np.array([1.0]), np.array([0.0]),
        ...               "s", "w")
        >>> oracle_router(b)(["a"]).tolist()
        [1.0]
    """
    rates = oracle_win_rates(benchmark)
    sums: dict[str, list[float]] = {}
    for p, r in zip(benchmark.prompts, rates):
        sums.setdefault(p, []).append(float(r))
    table = {p: float(np.mean(v)) for p, v in sums.items()}

    def route(prompts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(prompts))
        for i, p in enumerate(prompts):
            try:
                out[i] = table[p]
            except KeyError:
                raise KeyError(
                    f"oracle router: prompt {i} ({p[:60]!r}) is not in benchmark {benchmark.name!r}"
                ) from None
        return out

    return route


def prompt_length_router(prompts: Sequence[str], scale: float = 500.0) -> np.ndarray:
    """``len(prompt) / (len(prompt) + scale)`` (characters): longer prompts go strong first.

    Example:
        >>> prompt_length_router(["x" * 500], scale=500.0).tolist()
        [0.5]
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    lengths = np.fromiter((len(p) for p in prompts), dtype=np.float64, count=len(prompts))
    return lengths / (lengths + scale)


def baseline_win_rates(name: str, benchmark: Benchmark, *, seed: int = 0) -> np.ndarray:
    """Win rates of a named baseline on every row of ``benchmark``.

    Example:
        >>> b = Benchmark("t", np.array(["a"], dtype=object), np.array([1.0]), np.array([0.0]),
        ...               "s", "w")
        >>> baseline_win_rates("oracle", b).tolist()
        [1.0]
    """
    prompts = list(benchmark.prompts)
    if name == "random":
        return random_router(prompts, seed=seed)
    if name == "oracle":
        return oracle_win_rates(benchmark)
    if name == "prompt_length":
        return prompt_length_router(prompts)
    raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
