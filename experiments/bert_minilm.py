"""BERT-classifier router (paper ``bert``) with the MiniLM encoder fine-tuned end to end on
strong-vs-weak judge battles (gpt-4-1106-preview vs Mixtral-8x7B tiers; 3 classes: strong wins,
weak wins, tie). The paper fine-tunes BERT-base for 2000 steps, lr 1e-5, weight decay 0.01,
batch 16; MiniLM here, so it fits a CPU.

Run::

    routellm-jax train experiments/bert_minilm.py --workdir runs/bert_minilm

Result (2026-11-28, this config, commit 67b4449 + this file; 2-core CPU shared with 3-4 other jobs,
``nice -n 10 routellm-jax train experiments/bert_minilm.py --workdir /work/runs/bert_minilm``):
the judge mix keeps 129,403 battles over 772 prompts after removing MMLU/GSM8K/MT-Bench prompts
and the held-out judge split (243 AlpacaEval + 90 arena prompts, 55,867 battle rows); 1,328 of
them are gpt-4-1106-preview vs Mixtral (1,262 train / 66 held out; 77% "strong wins"). 300 steps
in 46.5 min wall (1.77 examples/s, ~9 s/step under contention; ~3 s/step on a quieter machine).
Final train loss 0.546 (mean of the last 25 steps), held-out loss 0.571, accuracy 0.781 (the
majority class alone: 0.77). APGR from the exported entry (``python tools/export_zoo_entry.py
--workdir /work/runs/bert_minilm --name bert-minilm --out-dir /work/zoo_publish --eval
gsm8k,mmlu-10pct,alpaca_heldout,arena_heldout ...``): GSM8K 0.485 (1,307), MMLU 0.499
(``mmlu-10pct``: 1,225 non-golden questions), held-out AlpacaEval 0.564 (242), held-out arena
0.506 (89). Near random (0.5) except on held-out AlpacaEval: 1,262 battles of one pair are too
few to learn more than the prior of that pair.

``arch_config`` sets the ``bert`` architecture's fields (``BertClassifierConfig``): encoder,
max length, the strong and weak model sets whose battles become labelled examples.
"""

from __future__ import annotations

from experiments._mixtures import judge_battles
from routellm_jax.training.config import default_config


def get_config():
    c = default_config()
    c.name = "bert_minilm"
    c.arch = "bert"
    c.arch_config.encoder = "all-MiniLM-L6-v2"
    # 128 tokens: 93% of the training prompts fit whole (median 26); 256 doubles the step time.
    c.arch_config.max_length = 128
    c.arch_config.strong_models = ("gpt-4-1106-preview",)
    c.arch_config.weak_models = ("mixtral-8x7b-instruct-v0.1",)
    c.data.mixture = judge_battles(seed=0)
    # Length buckets: batches of similar-length prompts cut to 32/64/128 tokens (median 26), one
    # compile each; bench_train measured 3.1x the examples/s of full 128-token rows.
    c.data.length_buckets = (32, 64, 128)
    c.optimizer.lr = 1e-5 * 3  # MiniLM is smaller than BERT-base: a somewhat larger step
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 30
    c.optimizer.schedule = "linear"
    c.optimizer.grad_clip_norm = 1.0
    c.batch_size = 16
    # 300 steps x 16 = 4,800 examples, ~3.6 epochs of the 1,328 decontaminated battles; the
    # paper's 2000 steps do not fit the 2-core CPU budget (~3 s/step here).
    c.steps = 300
    c.log_every = 25
    c.eval.every = 100
    c.eval.batch_size = 64
    c.eval.max_batches = 0
    c.eval.benchmark = "gsm8k"
    c.eval.benchmark_args.max_prompts = 300  # mid-run APGR on a seeded subset (cheap)
    c.checkpoint.every = 100
    c.checkpoint.best_metric = "eval/loss"
    return c
