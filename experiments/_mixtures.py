"""Mixture specs shared by the experiment configs (data, in ``MixtureSpec.to_dict()`` form).

Only training sources: the evaluation sets (MMLU/GSM8K/MT-Bench) are never named here, and the
mixture builder removes near-duplicates of them from every source.
"""

from __future__ import annotations

import ml_collections


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
            "sources": [
                {"name": "routerbench_train"},
                {"name": "llmrouter_train"},
                {"name": "alpaca_eval"},
            ],
        }
    )
