"""Every named training mix of the experiments, once, as data (``MixtureSpec.to_dict()`` form).

A config sets ``c.data.mixture = mixture(NAME)``; the trainer builds it with
``MixtureSpec.from_dict`` + ``build_mixture``, and the data card records the same dict, so a card
alone rebuilds its mix. Only training sources: the evaluation sets (MMLU/GSM8K/MT-Bench, and for
the grid's mixes the RouterBench test prompts) are never sources here, and the mixture builder
removes their prompts from every source: exact match after normalisation, and for the grid's
mixes (:data:`GRID_DECONTAMINATION`) also all-MiniLM-L6-v2 cosine >= 0.95 and a lexical pass
(hashed word uni+bigram cosine >= 0.9, catching re-templated copies such as RouterDC's MMLU
questions without the "Answer:" suffix). The passes are declared keys, so ``routellm-jax train``,
the grid runner and ``routellm-jax zoo build`` all build the same rows. Every mix also names the held-out judge split
(``HELDOUT_SPLIT``, the AlpacaEval / arena-bench-v1 prompts that ``experiments/run_grid.py``
evaluates on): ``build_mixture`` adds those prompts to the evaluation sets, so they are removed the
same way and counted in the data card.

Mixes:

* ``judge_battles``: LLM-judge pairwise labels (the paper's judge augmentation): AlpacaEval
  annotations and the arena-bench-v1 grades turned into battles;
* ``outcomes_and_battles``: per-model correctness (RouterBench, LLMRouter training splits) plus
  the AlpacaEval battles;
* the grid's (``experiments/grid.py``, with the MiniLM and lexical passes): ``judge`` (AlpacaEval battles + arena-bench-v1 grades as outcomes), ``golden``
  (correctness: a seeded 20% of RouterBench train, RouterDC's ARC-Challenge/GSM8K/HumanEval train
  files, a seeded 25% of LLMRouter train), ``both`` (judge + golden), ``both_mmlu`` (both + the
  1,500-question MMLU golden split), ``golden_mmlu`` (golden + the golden split) and
  ``both_mmlu_full`` (both_mmlu without the cuts, plus RouterDC's ARC-Easy train);
* dev-clean variants (:data:`DEV_CLEAN_MIXES`): ``both_mmlu_dev`` and ``golden_mmlu_dev`` are
  ``both_mmlu`` and ``golden_mmlu`` without the golden split's dev part, which the development
  suite (``routellm_jax.eval.dev_suite``) scores as its knowledge group; ``both_mmlu_dev_golden3``
  and ``both_mmlu_dev_golden10`` repeat that mix's golden-split questions 3 and 10 times;
  ``both_mmlu_dev_questions`` is ``both_mmlu_dev`` with RouterBench's few-shot demonstrations
  stripped from its rows, so its ARC-Challenge and Winogrande rows are questions and survive the
  near-duplicate pass.

Example:
    >>> [s["name"] for s in mixture("both_mmlu").sources][-1]
    'mmlu_golden'
"""

from __future__ import annotations

import copy
from typing import Any

import ml_collections

# Relative to the repository root (``judge_split.resolve_split_path``); committed, do not edit.
HELDOUT_SPLIT = "experiments/judge_heldout_split.txt"
# The grid evaluates on RouterBench's test prompts too (transfer pairs): keep them out of training.
GRID_EVAL_SETS = ("mmlu", "gsm8k", "mt_bench", "routerbench_test")
# The grid's seeded parts of the two largest correctness sources, a cut made for CPU time (the
# MiniLM embedding of every training prompt) and kept so the committed results stay reproducible.
TRAIN_FRACTIONS = {"routerbench_train": 0.2, "llmrouter_train": 0.25}
# RouterDC training files used: the MMLU/CMMLU ones are left out (their questions are MMLU test
# questions, i.e. the evaluation set; CMMLU is Chinese); ARC-Easy is left out for CPU time.
ROUTERDC_PREFIXES = (
    "routerdc/arc_challenge_train",
    "routerdc/gsm8k-train",
    "routerdc/humaneval_train",
)
# The "_full" mix drops those CPU-time cuts: every RouterBench and LLMRouter training row and
# RouterDC's ARC-Easy train too (GSM8K is the one benchmark no mix moved, and LLMRouter's train
# file holds ~1k GSM8K/MATH-style word problems graded for 9 open models, 3/4 of them cut).
FULL_ROUTERDC_PREFIXES = (*ROUTERDC_PREFIXES, "routerdc/arc_easy_train")


def _hashed(name: str) -> dict[str, Any]:
    """A built-in source cut to its seeded ``TRAIN_FRACTIONS`` part (salt: the source name)."""
    fraction = {"fraction": TRAIN_FRACTIONS[name], "salt": name}
    return {"name": name, "filters": {"hash_fraction": fraction}}


def _routerdc(prefixes: tuple[str, ...]) -> dict[str, Any]:
    return {"name": "routerdc_train", "filters": {"source_prefixes": list(prefixes)}}


_JUDGE = [{"name": "alpaca_eval"}, {"name": "arena_bench_v1"}]
_GOLDEN = [_hashed("routerbench_train"), _routerdc(ROUTERDC_PREFIXES), _hashed("llmrouter_train")]
# RouterBench's ARC-Challenge and Winogrande prompts repeat one file-wide block of few-shot
# demonstrations before the question, longer than MiniLM's window: each file embeds as one vector,
# the same as its test file's, so the MiniLM near-duplicate pass removes every one of those rows
# from the mixes above (the pair's own correctness on 355 reasoning questions). The "_questions"
# mixes strip the block after the cut (filter strip_shared_prefix) and check the stripped rows
# against the test files' questions too (evaluation set routerbench_test_questions).
_ROUTERBENCH_QUESTIONS = _hashed("routerbench_train")
_ROUTERBENCH_QUESTIONS["filters"]["strip_shared_prefix"] = True
_GOLDEN_QUESTIONS = [_ROUTERBENCH_QUESTIONS, *_GOLDEN[1:]]
_GOLDEN_FULL = [
    {"name": "routerbench_train"},
    _routerdc(FULL_ROUTERDC_PREFIXES),
    {"name": "llmrouter_train"},
]
# Evaluation data by design (MMLU test questions): not decontaminated, excluded from evaluation.
_MMLU_GOLDEN = [{"name": "mmlu_golden", "decontaminate": False}]
# The dev suite's knowledge group (routellm_jax.eval.dev_suite) is the golden split's questions with
# hash_fraction(q, "dev_suite") >= 0.7; the "_dev" mixes train on the other 70% only.
GOLDEN_TRAIN_PART = {"fraction": 0.7, "salt": "dev_suite"}
_MMLU_GOLDEN_TRAIN = [
    {"name": "mmlu_golden", "decontaminate": False, "filters": {"hash_fraction": GOLDEN_TRAIN_PART}}
]
# The pair's own correctness on the golden split, repeated (the "_goldenK" dev mixes): the same
# prompts as both_mmlu_dev, more of the loss.
GOLDEN_REPEATS = (3, 10)
GRID_DECONTAMINATION = {
    "threshold": 0.95,
    "near_duplicate_encoder": "all-MiniLM-L6-v2",
    "lexical_threshold": 0.9,
}
_GRID = {"eval_sets": list(GRID_EVAL_SETS), "heldout_split": HELDOUT_SPLIT, **GRID_DECONTAMINATION}
_GRID_QUESTIONS = {**_GRID, "eval_sets": [*GRID_EVAL_SETS, "routerbench_test_questions"]}

MIXES: dict[str, dict[str, Any]] = {
    "judge_battles": {
        "heldout_split": HELDOUT_SPLIT,
        "sources": [
            {"name": "alpaca_eval"},
            {"name": "arena_bench_v1", "to_comparisons": True, "tie_band": 0.5},
        ],
    },
    "outcomes_and_battles": {
        "heldout_split": HELDOUT_SPLIT,
        "sources": [
            {"name": "routerbench_train"},
            {"name": "llmrouter_train"},
            {"name": "alpaca_eval"},
        ],
    },
    "judge": {**_GRID, "sources": _JUDGE},
    "golden": {**_GRID, "sources": _GOLDEN},
    "both": {**_GRID, "sources": _JUDGE + _GOLDEN},
    "both_mmlu": {**_GRID, "sources": _JUDGE + _GOLDEN + _MMLU_GOLDEN},
    "golden_mmlu": {**_GRID, "sources": _GOLDEN + _MMLU_GOLDEN},
    "both_mmlu_full": {**_GRID, "sources": _JUDGE + _GOLDEN_FULL + _MMLU_GOLDEN},
    "both_mmlu_dev": {**_GRID, "sources": _JUDGE + _GOLDEN + _MMLU_GOLDEN_TRAIN},
    "golden_mmlu_dev": {**_GRID, "sources": _GOLDEN + _MMLU_GOLDEN_TRAIN},
    **{
        f"both_mmlu_dev_golden{k}": {
            **_GRID,
            "sources": _JUDGE + _GOLDEN + [{**_MMLU_GOLDEN_TRAIN[0], "weight": float(k)}],
        }
        for k in GOLDEN_REPEATS
    },
    "both_mmlu_dev_questions": {
        **_GRID_QUESTIONS,
        "sources": _JUDGE + _GOLDEN_QUESTIONS + _MMLU_GOLDEN_TRAIN,
    },
}
# The mixes that hold no dev-suite prompt (tests/experiments check it on the real data), so a
# router trained on one of them may be chosen on the suite. The others train on part of it: the
# "_mmlu" mixes on the knowledge group (the whole golden split), "_full" and
# "outcomes_and_battles" on the code and reasoning groups (every RouterBench training row).
DEV_CLEAN_MIXES = (
    "judge_battles",
    "judge",
    "golden",
    "both",
    "both_mmlu_dev",
    "golden_mmlu_dev",
    *(f"both_mmlu_dev_golden{k}" for k in GOLDEN_REPEATS),
    "both_mmlu_dev_questions",
)


def mixture(name: str, seed: int = 0) -> ml_collections.ConfigDict:
    """The named mix as a config section (a fresh copy): ``c.data.mixture = mixture("judge")``.

    Example:
        >>> mixture("golden").sources[0]["filters"]["hash_fraction"]["fraction"]
        0.2
    """
    if name not in MIXES:
        raise KeyError(f"unknown mix {name!r}; known: {sorted(MIXES)}")
    return ml_collections.ConfigDict({"name": name, "seed": seed, **copy.deepcopy(MIXES[name])})
