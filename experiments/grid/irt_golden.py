"""irt x golden: model-aware IRT router (per-model outcomes + battles in one latent space), 'gain' win rate.

Mix: golden only: RouterBench ARC/MBPP/Winogrande train + RouterDC split2_model7 *_train + LLMRouter train; decontaminated against MMLU, GSM8K, MT-Bench and the held-out judge prompts.

Command:
    python experiments/run_grid.py experiments/grid/irt_golden.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.470, gsm8k=0.537, alpaca_heldout=0.452, arena_heldout=0.533, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.605, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.651 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from routellm_jax.training.config import default_config


def get_config() -> ml_collections.ConfigDict:
    """The trainer config of this cell; run_grid fills arch_config.models/featurizer from the mix."""
    c = default_config()
    c.name = "irt_golden"
    c.arch = "irt"
    c.arch_config = ml_collections.ConfigDict(
        dict(latent_dim=16, hidden_dim=256, alpha=0.1, win_rate_mode="gain")
    )
    c.steps = 2000
    c.batch_size = 512
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 1e-5
    c.optimizer.warmup_steps = 100 if c.steps else 0
    c.data.holdout_fraction = 0.02
    c.log_every = 500
    c.checkpoint.async_save = False
    c.checkpoint.keep = 1
    c.grid = ml_collections.ConfigDict({"mix": "golden"})
    return c
