"""The held-out judge split: AlpacaEval / arena-bench-v1 prompts kept for evaluation only.

``experiments/run_grid.py --write-split`` writes the split file (``<set> <sha256 of the prompt
text>`` lines, ``#`` comments); the grid evaluates on those prompts, so every training mixture
must leave them out. This module is the one reader of that file, shared by the grid and by
:func:`routellm_jax.data.mixtures.build_mixture` (``MixtureSpec.heldout_split``), which adds the
held-out prompts to the evaluation sets a mixture is decontaminated against. Prompts are named
by :func:`routellm_jax.data.hashing.prompt_id`.

Example:
    >>> sorted(read_split("experiments/judge_heldout_split.txt"))
    ['alpaca_eval', 'arena_bench_v1']
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from routellm_jax import paths
from routellm_jax.data.hashing import prompt_id
from routellm_jax.data.sources.alpaca_eval import read_alpaca_eval_prompts
from routellm_jax.data.sources.fastchat import read_score_matrix

ALPACA_PROMPTS = Path("derived/alpaca_eval_prompts.jsonl")
ARENA_MATRIX = Path("derived/arena_bench_v1_score_matrix.csv")
# The evaluation-set names the held-out prompts get (the grid's benchmark names).
HELDOUT_SET_NAMES = {"alpaca_eval": "alpaca_heldout", "arena_bench_v1": "arena_heldout"}


def resolve_split_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as given if it exists, else relative to the source checkout (configs name the
    committed ``experiments/judge_heldout_split.txt`` relative to the repository).

    Example:
        >>> resolve_split_path("experiments/judge_heldout_split.txt").name
        'judge_heldout_split.txt'
    """
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return paths.repo_root() / p


def read_split(path: str | os.PathLike[str]) -> dict[str, frozenset[str]]:
    """Parse a split file -> ``{set: frozenset(ids)}``; errors name the file and line.

    Example:
        >>> len(read_split("experiments/judge_heldout_split.txt")["alpaca_eval"])
        242
    """
    path = resolve_split_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"held-out split file {path} does not exist")
    out: dict[str, set[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise ValueError(f"{path}:{n}: expected '<set> <sha256>', got {line!r}")
        out.setdefault(parts[0], set()).add(parts[1])
    return {k: frozenset(v) for k, v in out.items()}


def judge_prompts(root: Path) -> dict[str, list[str]]:
    """The distinct prompts of the two judge sets: ``{"alpaca_eval": [...], "arena_bench_v1": [...]}``."""

    alpaca = read_alpaca_eval_prompts(Path(root) / ALPACA_PROMPTS)
    arena = read_score_matrix(Path(root) / ARENA_MATRIX, skip_bad_rows=True)
    return {
        "alpaca_eval": list(dict.fromkeys(alpaca.values())),
        "arena_bench_v1": list(dict.fromkeys(arena.prompt.tolist())),
    }


def heldout_prompts(root: Path, split: Mapping[str, frozenset[str]]) -> dict[str, list[str]]:
    """The held-out prompt texts of each judge set (keyed like the split: ``alpaca_eval``...)."""
    return {
        name: [p for p in ps if prompt_id(p) in split.get(name, ())]
        for name, ps in judge_prompts(root).items()
    }


def heldout_eval_sets(root: Path, path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The held-out prompts as evaluation sets for decontamination: ``alpaca_heldout``,
    ``arena_heldout``. A split id that matches no prompt of the data is an error (the split and
    the data disagree, so the exclusion could silently miss prompts).
    """
    split = read_split(path)
    unknown = sorted(set(split) - set(HELDOUT_SET_NAMES))
    if unknown:
        raise ValueError(
            f"{resolve_split_path(path)}: unknown set(s) {unknown}; known {sorted(HELDOUT_SET_NAMES)}"
        )
    held = heldout_prompts(root, split)
    for name, ids in split.items():
        if len(held[name]) != len(ids):
            raise ValueError(
                f"{resolve_split_path(path)}: {len(ids) - len(held[name])} of {len(ids)} "
                f"{name} ids match no prompt in {root}"
            )
    return {HELDOUT_SET_NAMES[k]: v for k, v in held.items()}


# Calibration reference sets of zoo entries (``routellm_jax.publish``): chat-style traffic, none of
# it an evaluation prompt (MMLU/GSM8K/MT-Bench).
REFERENCE_SETS = ("alpaca_eval+arena_bench_v1",)


def reference_prompts(
    name: str = REFERENCE_SETS[0], data_dir: str | os.PathLike[str] | None = None
) -> tuple[list[str], str]:
    """The prompts a zoo entry is calibrated on, and a sentence saying what they are.

    ``alpaca_eval+arena_bench_v1``: every prompt of both judge sets (:func:`judge_prompts`), the
    805 AlpacaEval instructions and the 300 Arena-Hard (arena-bench-v1) prompts.
    """
    if name not in REFERENCE_SETS:
        raise ValueError(f"unknown reference prompt set {name!r}; known: {list(REFERENCE_SETS)}")
    sets = judge_prompts(paths.data_dir(data_dir))
    alpaca, arena = sets["alpaca_eval"], sets["arena_bench_v1"]
    prompts = list(dict.fromkeys(alpaca + arena))
    what = (
        f"{name}: {len(alpaca)} AlpacaEval instructions ({ALPACA_PROMPTS.name}) + {len(arena)} "
        f"Arena-Hard v1 prompts ({ARENA_MATRIX.name}), {len(prompts)} distinct"
    )
    return prompts, what
