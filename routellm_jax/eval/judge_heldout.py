"""The held-out judge benchmarks: the seeded 30% of AlpacaEval and arena-bench-v1 that no training
mix may contain (the split file ``experiments/judge_heldout_split.txt``, read by
:mod:`routellm_jax.data.judge_split`), scored for the paper's pair.

``alpaca_heldout``: per prompt, the strong model's AlpacaEval preference share against the weak one
(weighted wins, ties half, mean over annotators). ``arena_heldout``: the pair's arena-bench-v1 GPT-4
grades. The grid (``experiments/run_grid.py``) reports them as columns and ``routellm-jax zoo
build`` (:mod:`routellm_jax.publish.build`) puts them in model cards, so both build them here.

Example:
    >>> HELDOUT_BENCHMARKS
    ('alpaca_heldout', 'arena_heldout')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from routellm_jax.data.hashing import prompt_id
from routellm_jax.data.labels import pair_preference_sums
from routellm_jax.data.records import OutcomeTable
from routellm_jax.data.sources.alpaca_eval import read_alpaca_eval_pairwise
from routellm_jax.data.sources.fastchat import read_score_matrix
from routellm_jax.data.sources.routellm_evals import STRONG_MODEL, WEAK_MODEL
from routellm_jax.eval.benchmarks import Benchmark, benchmark_from_outcomes

# Relative to the repository root (``judge_split.resolve_split_path``).
SPLIT_FILE = "experiments/judge_heldout_split.txt"
HELDOUT_BENCHMARKS = ("alpaca_heldout", "arena_heldout")
ALPACA_CSV = Path("derived/alpaca_eval_pairwise_labels.csv")
ARENA_MATRIX = Path("derived/arena_bench_v1_score_matrix.csv")


def alpaca_pair_outcomes(root: Path, strong: str, weak: str) -> OutcomeTable:
    """AlpacaEval battles of one pair -> outcomes: per prompt, the strong model's preference share
    (weighted wins, ties half; mean over annotators) and the weak model's ``1 -`` that.
    """

    c = read_alpaca_eval_pairwise(root / ALPACA_CSV, skip_bad_rows=True)
    acc = pair_preference_sums(c, strong, weak)
    if not acc:
        raise ValueError(f"{root / ALPACA_CSV}: no battles of {strong!r} vs {weak!r}")
    prompts = list(acc)
    share = np.array([acc[p][0] / acc[p][1] for p in prompts])
    n = len(prompts)
    return OutcomeTable(
        prompt=np.array(prompts + prompts, dtype=object),
        model=np.array([strong] * n + [weak] * n, dtype=object),
        score=np.concatenate([share, 1.0 - share]).astype(np.float32),
        source=np.array(["alpaca_eval_pair"] * 2 * n, dtype=object),
        kind=np.array(["grade"] * 2 * n, dtype=object),
    )


def keep_ids(table: OutcomeTable, ids: frozenset[str]) -> OutcomeTable:
    """The rows whose prompt's id (:func:`~routellm_jax.data.judge_split.prompt_id`) is in ``ids``.

    Example:
        >>> from routellm_jax.data.records import Outcome
        >>> t = OutcomeTable.from_records([Outcome("a", "m", 1.0), Outcome("b", "m", 0.0)])
        >>> keep_ids(t, frozenset({prompt_id("b")})).prompt.tolist()
        ['b']
    """
    return table.take(np.array([prompt_id(p) in ids for p in table.prompt], dtype=bool))


def heldout_arena(root: Path, split: Mapping[str, frozenset[str]]) -> OutcomeTable:
    """Every model's arena-bench-v1 grades on the held-out arena prompts."""

    table = read_score_matrix(root / ARENA_MATRIX, skip_bad_rows=True)
    return keep_ids(table, split["arena_bench_v1"])


def judge_heldout_benchmarks(
    root: Path, split: Mapping[str, frozenset[str]]
) -> dict[str, Benchmark]:
    """``alpaca_heldout`` and ``arena_heldout`` for the paper's pair."""
    strong, weak = STRONG_MODEL, WEAK_MODEL
    alpaca = keep_ids(alpaca_pair_outcomes(root, strong, weak), split["alpaca_eval"])
    return {
        "alpaca_heldout": benchmark_from_outcomes(
            alpaca, strong, weak, name="alpaca_heldout", duplicates="mean"
        ),
        "arena_heldout": benchmark_from_outcomes(
            heldout_arena(root, split), strong, weak, name="arena_heldout", duplicates="mean"
        ),
    }
