"""Item-response-theory router (``irt``) on MiniLM embeddings: per-model correctness outcomes
(RouterBench, LLMRouter training splits) plus judge battles.

Run::

    routellm-jax train experiments/irt_minilm.py --workdir runs/irt_minilm
"""

from __future__ import annotations

from experiments._mixtures import mixture
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.training.config import default_config


def get_config():
    c = default_config()
    c.name = "irt_minilm"
    c.arch = "irt"
    c.arch_config.featurizer = "all-MiniLM-L6-v2"
    c.arch_config.text_dim = featurizer_dim(c.arch_config.featurizer)
    c.data.mixture = mixture("outcomes_and_battles")
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 1e-5
    c.optimizer.warmup_steps = 100
    c.batch_size = 256
    c.steps = 3000
    c.log_every = 100
    c.eval.every = 500
    c.eval.batch_size = 1024
    c.eval.benchmark = "gsm8k"
    c.checkpoint.every = 500
    c.checkpoint.best_metric = "eval/loss"
    return c
