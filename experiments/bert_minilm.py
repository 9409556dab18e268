"""BERT-classifier router (paper ``bert``) with the MiniLM encoder fine-tuned end to end on
strong-vs-weak judge battles (gpt-4-1106-preview vs Mixtral-8x7B tiers; 3 classes: strong wins,
weak wins, tie). The paper fine-tunes BERT-base for 2000 steps, lr 1e-5, weight decay 0.01,
batch 16; MiniLM here, so it fits a CPU.

Run::

    routellm-jax train experiments/bert_minilm.py --workdir runs/bert_minilm

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
    c.arch_config.max_length = 256
    c.arch_config.strong_models = ("gpt-4-1106-preview",)
    c.arch_config.weak_models = ("mixtral-8x7b-instruct-v0.1",)
    c.data.mixture = judge_battles(seed=0)
    c.optimizer.lr = 1e-5 * 3  # MiniLM is smaller than BERT-base: a somewhat larger step
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 100
    c.optimizer.schedule = "linear"
    c.optimizer.grad_clip_norm = 1.0
    c.batch_size = 16
    c.steps = 2000
    c.log_every = 50
    c.eval.every = 500
    c.eval.batch_size = 64
    c.eval.max_batches = 20
    c.eval.benchmark = "gsm8k"
    c.checkpoint.every = 250
    c.checkpoint.best_metric = "eval/loss"
    return c
