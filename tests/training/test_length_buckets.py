"""``config.data.length_buckets``: a token-sequence router trains on batches cut to a few widths,
compiling the train step once per width and never again."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.training.config import default_config
from routellm_jax.training.train import train

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
TINY_BERT = dict(
    vocab_size=30522,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=64,
)


def _battles(n: int = 80) -> TrainingData:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        # Half short (about 5-13 tokens), half long (cut at max_length 64): two widths at least.
        n_words = int(rng.integers(1, 5)) if i % 2 else int(rng.integers(30, 40))
        words = " ".join(f"word{j}" for j in range(n_words))
        rows.append(Comparison(f"question {i}: {words}", STRONG, WEAK, "a" if i % 3 else "b"))
    return TrainingData.of(comparisons=ComparisonTable.from_records(rows))


def _config(steps: int, buckets: tuple[int, ...]):
    c = default_config()
    c.arch = "bert"
    c.arch_config.pretrained = False
    c.arch_config.encoder_config = TINY_BERT
    c.arch_config.max_length = 64
    c.arch_config.strong_models = (STRONG,)
    c.arch_config.weak_models = (WEAK,)
    c.data.holdout_fraction = 0.2
    c.data.length_buckets = buckets
    c.data.length_window_batches = 2
    c.batch_size = 8
    c.steps = steps
    c.eval.batch_size = 8
    c.checkpoint.async_save = False
    return c


def test_bucketed_training_compiles_once_per_width(tmp_path):
    result = train(_config(10, (16, 32)), tmp_path / "run", data=_battles(), progress=False)
    # Length-sorted windows give short batches (bucket 16) and long ones (full width 64).
    assert result.step == 10
    assert 2 <= result.step_compiles <= 3, result.step_compiles
    assert np.isfinite(result.metrics["eval/loss"])


def test_buckets_on_a_router_without_token_sequences_name_the_architecture(tmp_path):
    c = default_config()
    c.arch = "mf"
    c.data.length_buckets = (16,)
    from routellm_jax.models.registry import get_architecture
    from routellm_jax.training.train import length_bucketing

    with pytest.raises(ValueError, match="architecture 'mf' declares no sequence_keys"):
        length_bucketing(get_architecture("mf"), c.data)
