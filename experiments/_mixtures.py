"""Mixture specs shared by the experiment configs (data, in ``MixtureSpec.to_dict()`` form).

Only training sources: the evaluation sets (MMLU/GSM8K/MT-Bench) are never named here, and the
mixture builder removes their prompts from every source (exact match after normalisation; the
config path has no embedder, so no MiniLM near-duplicate pass). Every mix also names the held-out
judge split (``HELDOUT_SPLIT``, the AlpacaEval / arena-bench-v1 prompts that
``experiments/run_grid.py`` evaluates on): ``build_mixture`` adds those prompts to the evaluation
sets, so they are removed the same way and counted in the data card.
"""

from __future__ import annotations

import ml_collections

# Relative to the repository root (``judge_split.resolve_split_path``); committed, do not edit.
HELDOUT_SPLIT = "experiments/judge_heldout_split.txt"


def judge_battles(seed: int = 0) -> ml_collections.ConfigDict:
    """LLM-judge pairwise labels (the paper's judge augmentation): AlpacaEval annotations and the
    Arena-Hard v1 grades turned into battles.

    Example:
        >>> judge_battles().sources[0]["name"]
        'alpaca_eval'
    """
    return ml_collections.ConfigDict(
        {
            "name": "judge_battles",
            "seed": seed,
            "heldout_split": HELDOUT_SPLIT,
            "sources": [
                {"name": "alpaca_eval"},
                {"name": "arena_bench_v1", "to_comparisons": True, "tie_band": 0.5},
            ],
        }
    )


def outcomes_and_battles(seed: int = 0) -> ml_collections.ConfigDict:
    """Per-model correctness (RouterBench, LLMRouter training splits) plus the judge battles.

    Example:
        >>> [s["name"] for s in outcomes_and_battles().sources][:2]
        ['routerbench_train', 'llmrouter_train']
    """
    return ml_collections.ConfigDict(
        {
            "name": "outcomes_and_battles",
            "seed": seed,
            "heldout_split": HELDOUT_SPLIT,
            "sources": [
                {"name": "routerbench_train"},
                {"name": "llmrouter_train"},
                {"name": "alpaca_eval"},
            ],
        }
    )
