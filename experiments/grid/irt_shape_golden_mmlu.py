"""irt x golden_mmlu on MiniLM + prompt-shape features (correctness data only, no judge battles).

Featurizer all-MiniLM-L6-v2+shape: the MiniLM embedding (mean-pooled, L2-normalised, so it carries no
prompt length) with 9 prompt-structure features appended (routellm_jax.models.featurizers.prompt_shape:
log word/char/line counts, digit/math/non-ASCII shares, choices/code/question flags; fixed scaling,
nothing fitted), so the head can learn difficulty from length.
Without judge battles: do judge preferences pull MMLU routing the wrong way?

Mix: golden (RouterBench, RouterDC, LLMRouter correctness of many models) + the 1,500-question MMLU golden split; no judge data. Decontaminated as every mix.

Command:
    python experiments/run_grid.py experiments/grid/irt_shape_golden_mmlu.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.662, gsm8k=0.572, alpaca_heldout=0.481, arena_heldout=0.580, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.605, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.549 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.training.config import default_config

FEATURIZER = "all-MiniLM-L6-v2+shape"


def get_config() -> ml_collections.ConfigDict:
    """The trainer config of this cell; run_grid fills arch_config.models from the mix."""
    c = default_config()
    c.name = "irt_shape_golden_mmlu"
    c.arch = "irt"
    c.arch_config = ml_collections.ConfigDict(
        dict(
            latent_dim=16,
            hidden_dim=256,
            alpha=0.1,
            win_rate_mode="gain",
            featurizer=FEATURIZER,
            text_dim=featurizer_dim(FEATURIZER),
        )
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
    c.grid = ml_collections.ConfigDict({"mix": "golden_mmlu", "label": "irt+shape"})
    return c
