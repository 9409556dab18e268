"""irt+shape+src, battle weight 0.03, with the training noise on the MiniLM part only (noise_dims=384).

Why: irt adds Gaussian noise (alpha 0.1) to its input features during training. On the unit-norm
384-d MiniLM vector that is a regulariser, but on the 9 appended shape features it is as large as
the spread of log prompt length inside one benchmark, the feature that carries difficulty on GSM8K
(experiments/gsm8k_difficulty_ceiling.py: length predicts 7 open models' mean correctness on
held-out GSM8K-train with r = 0.32, MiniLM with r = 0.10-0.14). noise_dims=384 keeps the noise
off the shape features; everything else is irt_shape_srcmod_both_mmlu.

Chosen on training data only (`python experiments/source_effect_dev.py
/tmp/routellm_grid7/mixes/both_mmlu --folds 3 --variants none model`, with and without
`--noise-dims 384`; mean of 3 folds, golden / AlpacaEval / arena dev APGR, GSM8K-train difficulty
Spearman): "model" term, noise on all features 0.618 / 0.562 / 0.534 / 0.152, on MiniLM only
0.629 / 0.568 / 0.540 / 0.167; no term 0.616 / 0.535 / 0.549 / 0.153 and 0.617 / 0.528 / 0.555 /
0.164 (prompt length 0.566 / 0.430 / 0.535 / 0.333). Rule as before (best golden dev): "model"
with noise_dims=384. The gains are inside fold noise; the row says whether they survive.

Mix: judge + golden + the 1,500-question MMLU golden split (evaluated on the other 12,537); decontaminated against MMLU, GSM8K, MT-Bench, the held-out judge prompts and the RouterBench test prompts.

Command:
    python experiments/run_grid.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.629, gsm8k=0.589, alpaca_heldout=0.550, arena_heldout=0.447, arena_heldout:claude-2.1/mistral-7b-instruct-v0.1=0.573, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.601, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.408 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from experiments.grid.irt_shape_srcmod_both_mmlu import get_config as base_config
from routellm_jax.models.featurizers import featurizer_dim


def get_config() -> ml_collections.ConfigDict:
    """irt_shape_srcmod_both_mmlu's config with noise on the MiniLM features only."""
    c = base_config()
    c.name = "irt_shape_srcmod_clean_both_mmlu"
    c.arch_config.noise_dims = featurizer_dim("all-MiniLM-L6-v2")
    c.grid = ml_collections.ConfigDict(
        {"mix": "both_mmlu", "label": "irt+shape+src bw=0.03 noise=MiniLM"}
    )
    return c
