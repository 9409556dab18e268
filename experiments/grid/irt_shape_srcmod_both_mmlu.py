"""irt x both_mmlu on MiniLM + shape, battle weight 0.03, with a per-(source, model) nuisance term.

Why: routing thresholds are applied within one benchmark, so the router needs the ranking of prompts
within a domain; the training sources (AlpacaEval battles, arena-bench grades, golden MMLU, RouterDC
GSM8K/ARC/HumanEval train, RouterBench, LLMRouter) differ in level and in how each labeller sees each
model. source_effect="model" adds e[group, model] to the score during training (a fixed effect of the
row's source group, dropped at inference; routellm_jax.models.irt), with a centring penalty so the
item MLP keeps only within-source variation. Same as irt_shape_both_mmlu_bw003 otherwise.

Chosen on training data only (the script as of commit ad7ac89, before the arena-bench dev part: `python experiments/source_effect_dev.py /tmp/routellm_grid4/mixes/both_mmlu --folds 3`, then `--variants model --battle-weight 0.1` / `0.3`):
3 hash folds of the golden MMLU split (pair correctness), of RouterDC's GSM8K-train (7 open models,
pairs with an accuracy gap >= 0.2) and of the mix's AlpacaEval prompts, held out of training; mean
dev APGR golden / GSM8K-train / AlpacaEval at battle weight 0.03: no term 0.606 / 0.503 / 0.538,
"difficulty" 0.610 / 0.503 / 0.531, "model" 0.616 / 0.513 / 0.554 (prompt length 0.566 / 0.504 /
0.430); "model" at battle weight 0.1: 0.605 / 0.514 / 0.606, at 0.3: 0.591 / 0.515 / 0.603. The
GSM8K-train dev is uninformative (prompt length and every router ~0.50-0.51 there). "model" on the
judge groups only (`--groups judge`): 0.609 / 0.505 / 0.564. Rule (as for the battle weight): the
best golden-dev APGR -> "model" over all groups at 0.03. Later, with an arena-bench dev part added
to the script (`--variants none model`), golden / AlpacaEval / arena dev: no term 0.616 / 0.535 /
0.549, "model" 0.618 / 0.562 / 0.534: the arena cost was visible on training data too.

Mix: judge + golden + the 1,500-question MMLU golden split (evaluated on the other 12,537); decontaminated against MMLU, GSM8K, MT-Bench, the held-out judge prompts and the RouterBench test prompts.

Command:
    python experiments/run_grid.py experiments/grid/irt_shape_srcmod_both_mmlu.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.630, gsm8k=0.578, alpaca_heldout=0.547, arena_heldout=0.498, arena_heldout:claude-2.1/mistral-7b-instruct-v0.1=0.583, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.597, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.375 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from experiments.source_effect_dev import SOURCE_GROUPS
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.training.config import default_config

FEATURIZER = "all-MiniLM-L6-v2+shape"


def get_config() -> ml_collections.ConfigDict:
    """The trainer config of this cell; run_grid fills arch_config.models from the mix."""
    c = default_config()
    c.name = "irt_shape_srcmod_both_mmlu"
    c.arch = "irt"
    c.arch_config = ml_collections.ConfigDict(
        dict(
            latent_dim=16,
            hidden_dim=256,
            alpha=0.1,
            win_rate_mode="gain",
            battle_weight=0.03,
            source_effect="model",
            source_groups=SOURCE_GROUPS,
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
    c.grid = ml_collections.ConfigDict({"mix": "both_mmlu", "label": "irt+shape+src bw=0.03"})
    return c
