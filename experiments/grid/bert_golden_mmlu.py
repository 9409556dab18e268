"""bert x golden_mmlu: MiniLM fine-tuned end to end (the paper's ``bert`` router, 3-way head) on the
pair's correctness instead of judge battles.

The bert router is pair-specific, so of the mix's 27 models' outcomes only the prompts graded for
both gpt-4-1106-preview and Mixtral-8x7B become examples (``use_outcomes``: strong right and weak
wrong -> strong wins, the reverse -> weak wins, both right or both wrong -> tie): the 1,500-question
MMLU golden split and the pair's RouterBench train rows. The judge-trained ``bert_minilm`` stays at
random level on MMLU/GSM8K (0.499/0.485); does the same encoder learn difficulty from golden labels?

Mix: golden (RouterBench, RouterDC, LLMRouter correctness) + the MMLU golden split; no judge data.
Decontaminated as every mix.

Command:
    python experiments/run_grid.py experiments/grid/bert_golden_mmlu.py

Result (APGR; filled in from experiments/results/results.json by run_grid --stamp):
    RESULT: mmlu=0.609, gsm8k=0.533, alpaca_heldout=0.511, arena_heldout=0.546, routerbench_test:gpt-3.5-turbo-1106/llama-2-70b-chat=0.556, routerbench_test:gpt-4-1106-preview/mixtral-8x7b-instruct-v0.1=0.550 (from: python experiments/run_grid.py experiments/grid/irt_shape_both_mmlu.py experiments/grid/irt_shape_both_mmlu_bw01.py experiments/grid/irt_shape_both_mmlu_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu.py experiments/grid/irt_shape_srcmod_clean_both_mmlu.py experiments/grid/irt_shape_srcdif_both_mmlu.py experiments/grid/irt_shape_both_mmlu_full_bw003.py experiments/grid/irt_shape_srcmod_both_mmlu_full.py experiments/grid/mf_shape_both_mmlu.py experiments/grid/irt_shapeonly_both_mmlu.py experiments/grid/mf_both_mmlu.py experiments/grid/irt_both_mmlu.py experiments/grid/sw_ranking_both_mmlu.py experiments/grid/irt_shape_golden_mmlu.py experiments/grid/bert_golden_mmlu.py experiments/grid/mf_judge.py experiments/grid/irt_judge.py experiments/grid/sw_ranking_judge.py experiments/grid/mf_golden.py experiments/grid/irt_golden.py experiments/grid/sw_ranking_golden.py experiments/grid/mf_both.py experiments/grid/irt_both.py experiments/grid/sw_ranking_both.py --out experiments/results --workdir /tmp/routellm_grid7 --stamp)
"""

import ml_collections

from routellm_jax.training.config import default_config


def get_config() -> ml_collections.ConfigDict:
    """The trainer config of this cell; run_grid fills arch_config.models from the mix."""
    c = default_config()
    c.name = "bert_golden_mmlu"
    c.arch = "bert"
    c.arch_config = ml_collections.ConfigDict(
        dict(
            encoder="all-MiniLM-L6-v2",
            max_length=128,
            strong_models=("gpt-4-1106-preview",),
            weak_models=("mixtral-8x7b-instruct-v0.1",),
            use_outcomes=True,
        )
    )
    # Batches of similar-length prompts cut to 32/64/128 tokens: one compile each.
    c.data.length_buckets = (32, 64, 128)
    c.steps = 300
    c.batch_size = 32
    c.optimizer.lr = 3e-5
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 30
    c.optimizer.schedule = "linear"
    c.optimizer.grad_clip_norm = 1.0
    c.data.holdout_fraction = 0.02
    c.log_every = 50
    c.eval.every = 0
    c.checkpoint.async_save = False
    c.checkpoint.keep = 1
    c.grid = ml_collections.ConfigDict({"mix": "golden_mmlu", "label": "bert"})
    return c
