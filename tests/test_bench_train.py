"""``tools/bench_train.py``'s transformers reference under torch's own bf16 autocast (nothing is
timed here: the loops run, and autocast changes the numbers)."""

from __future__ import annotations

import math

import pytest

from tools import bench_train

pytest.importorskip("torch")
pytest.importorskip("transformers")

TINY = dict(
    bench_train.MINILM,
    vocab_size=1100,  # bert_data draws token ids from 1000 up
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def test_transformers_reference_runs_under_bf16_autocast():
    data = bench_train.bert_data(16, 32, TINY["vocab_size"])
    losses = {}
    for autocast in (False, True):
        loop = bench_train.prepare_bert_torch(
            data, 4, warmup=1, shapes=TINY, autocast_bf16=autocast
        )
        assert loop.run(1) > 0
        losses[autocast] = loop.loss()
    assert all(math.isfinite(x) for x in losses.values())
    # Same seed, same rows: only the forward's bf16 matmuls tell the two apart.
    assert losses[True] != losses[False]
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
