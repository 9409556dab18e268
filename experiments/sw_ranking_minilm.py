"""Similarity-weighted Elo router (paper ``sw_ranking``): built from the judge battles, no steps.

``routellm-jax train`` calls the architecture's ``fit`` (embeds the battle prompts with MiniLM and
stores them with the battles) and saves the result as a step-0 checkpoint.

Run::

    routellm-jax train experiments/sw_ranking_minilm.py --workdir runs/sw_ranking_minilm

Result (2026-11-28, 2-core CPU shared with other jobs): fit in 228 s (1,103 distinct prompts,
127k battle rows, 110 BT players); GSM8K APGR 0.508, AUC 0.749.
"""

from __future__ import annotations

from experiments._mixtures import mixture
from routellm_jax.models.featurizers import featurizer_dim
from routellm_jax.training.config import default_config


def get_config():
    c = default_config()
    c.name = "sw_ranking_minilm"
    c.arch = "sw_ranking"
    c.arch_config.featurizer = "all-MiniLM-L6-v2"
    c.arch_config.text_dim = featurizer_dim(c.arch_config.featurizer)
    c.arch_config.gamma = 10.0
    c.data.mixture = mixture("judge_battles")
    c.eval.benchmark = "gsm8k"
    return c
