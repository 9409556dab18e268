"""Evaluators from the config's ``evals`` dict: named, typed, logged under their names."""

from __future__ import annotations

from pathlib import Path

import pytest

from routellm_jax.training.config import ConfigError, apply_overrides, default_config
from routellm_jax.training.evaluators import evaluator_specs


def test_specs_from_the_evals_dict_and_the_older_single_benchmark() -> None:
    c = apply_overrides(
        default_config(),
        [
            "--config.evals.gsm8k_sub.type=benchmark",
            "--config.evals.gsm8k_sub.benchmark=gsm8k",
            "--config.evals.gsm8k_sub.max_prompts=50",
            "--config.eval.benchmark=mt-bench",
            "--config.data.data_dir=/data",
        ],
    )
    specs = evaluator_specs(c)
    assert specs["gsm8k_sub"] == {
        "type": "benchmark",
        "benchmark": "gsm8k",
        "max_prompts": 50,
        "data_dir": "/data",
    }
    assert specs["mt-bench"]["type"] == "benchmark"
    c.evals.bad = {"type": "perplexity"}
    with pytest.raises(ValueError, match=r"evals.bad: unknown evaluator type 'perplexity'"):
        evaluator_specs(c)
    with pytest.raises(ConfigError, match="no config key"):
        apply_overrides(default_config(), ["--config.eval.benchmark_argz=1"])


def test_training_logs_each_named_evaluator(data_dir: Path, tmp_path: Path) -> None:
    """A short mf run on hashed words with a benchmark and the development suite as evaluators:
    both sets of metrics reach the result and metrics.jsonl under their names."""
    import json

    import ml_collections

    from routellm_jax.training.train import train

    c = default_config()
    c.arch = "mf"
    c.arch_config = ml_collections.ConfigDict(
        dict(dim=8, use_outcomes=False, featurizer="hashing:64", text_dim=64)
    )
    c.steps, c.batch_size, c.log_every = 4, 32, 4
    c.checkpoint.async_save = False
    c.data.data_dir = str(data_dir)
    c.data.mixture = ml_collections.ConfigDict(
        dict(name="arena", sources=[dict(name="arena_bench_v1", to_comparisons=True)])
    )
    # The dev suite and GSM8K name gpt-4-1106-preview and Mixtral: both are in arena-bench-v1.
    c.evals.gsm8k = dict(type="benchmark", benchmark="gsm8k", max_prompts=64)
    c.evals.dev = dict(type="dev_suite")
    result = train(c, tmp_path / "run", progress=False)
    assert 0.0 <= result.metrics["bench/gsm8k/apgr"] <= 1.0
    groups = ("code", "math", "reasoning", "open_ended", "knowledge")
    assert all(f"dev/dev/{g}/strong_share" in result.metrics for g in groups)
    assert result.metrics["dev/dev/worst_apgr"] <= result.metrics["dev/dev/mean_apgr"]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert any("bench/gsm8k/apgr" in row for row in logged)
