"""Matrix factorisation router (paper ``mf``) on frozen MiniLM prompt embeddings, judge battles.

The paper's recipe (RouteLLM ``train_matrix_factorization.py``): dim 128, prompt noise alpha 0.1,
Adam lr 3e-4, weight decay 1e-5, batch 64, 5% held out; here with AdamW (decoupled decay), batch
256 and a fixed step budget that fits a CPU. The model table is every model in the mixture.

Run::

    routellm-jax train experiments/mf_minilm_judge.py --workdir runs/mf_minilm_judge

Result: see the report of the run that produced the zoo entry (``metrics.jsonl`` in the workdir).
"""

from __future__ import annotations

from experiments._mixtures import judge_battles
from routellm_jax.training.config import default_config


def get_config():
    c = default_config()
    c.name = "mf_minilm_judge"
    c.arch = "mf"
    c.arch_config.featurizer = "all-MiniLM-L6-v2"
    c.arch_config.text_dim = 384
    c.arch_config.dim = 128
    c.arch_config.alpha = 0.1
    c.data.mixture = judge_battles(seed=0)
    c.data.holdout_fraction = 0.05
    c.optimizer.lr = 3e-4
    c.optimizer.weight_decay = 1e-5
    c.optimizer.schedule = "constant"
    c.batch_size = 256
    c.steps = 3000
    c.log_every = 100
    c.eval.every = 500
    c.eval.batch_size = 1024
    c.eval.benchmark = "gsm8k"
    c.checkpoint.every = 500
    c.checkpoint.keep = 2
    c.checkpoint.best_metric = "eval/loss"
    c.mesh.data = -1
    return c
