"""irt+shape+src (per-(source, model) nuisance term), battle weight 0.03, on both_mmlu_full.

Why: irt_shape_srcmod_both_mmlu is the best GSM8K row on both_mmlu (0.578) and the term is what
lets sources with different base rates share one item model; with every LLMRouter/RouterBench row
and RouterDC's ARC-Easy added (see irt_shape_both_mmlu_full_bw003 for why), this row checks whether
the two add up. ARC-Easy gets its own source group; everything else is irt_shape_srcmod_both_mmlu.

Mix: both_mmlu_full (irt_shape_both_mmlu_full_bw003's docstring); decontaminated as every mix.

Command:
    python experiments/run_grid.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.614, gsm8k=0.597, alpaca_heldout=0.545, arena_heldout=0.449, arena_heldout:claude-2.1/mistral-7b-instruct-v0.1=0.561, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.593, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.351 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from experiments.grid.irt_shape_srcmod_both_mmlu import get_config as base_config
from experiments.source_effect_dev import SOURCE_GROUPS


def get_config() -> ml_collections.ConfigDict:
    """irt_shape_srcmod_both_mmlu's config on both_mmlu_full, with an ARC-Easy source group."""
    c = base_config()
    c.name = "irt_shape_srcmod_both_mmlu_full"
    c.arch_config.source_groups = (*SOURCE_GROUPS, "routerdc/arc_easy_train")
    c.grid = ml_collections.ConfigDict({"mix": "both_mmlu_full", "label": "irt+shape+src bw=0.03"})
    return c
