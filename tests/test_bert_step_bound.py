"""``tools/bert_step_bound.py``: its stripped encoder really lacks the layers it claims to remove,
the real layers come back afterwards, and the tool runs end to end on a tiny encoder (nothing is
timed against anything here)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax.models.encoders.bert import BertConfig, BertModel
from tools import bert_step_bound

TINY = dict(
    vocab_size=1100,  # bench_train.bert_data draws token ids from 1000 up
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)


def _encoder_text(ids: np.ndarray, mask: np.ndarray) -> tuple[str, set[str]]:
    model = BertModel(BertConfig(**TINY))
    params = model.init(jax.random.PRNGKey(0), ids, mask, deterministic=True)
    hlo = jax.jit(lambda p: model.apply(p, ids, mask, deterministic=True)).lower(params)
    names = {
        "/".join(str(k.key) for k in path)
        for path, _ in jax.tree_util.tree_leaves_with_path(params)
    }
    return hlo.as_text(), names


def test_stripped_encoder_has_no_gelu_layernorm_or_softmax_and_the_real_one_returns():
    ids = np.full((2, 8), 1001, np.int32)
    mask = np.ones((2, 8), np.int32)
    mask[1, 5:] = 0
    real, real_names = _encoder_text(ids, mask)
    with bert_step_bound.without_elementwise_layers():
        stripped, stripped_names = _encoder_text(ids, mask)
    again, _ = _encoder_text(ids, mask)
    assert "erf" in real and "exponential" in real and "rsqrt" in real
    for op in ("erf", "exponential", "rsqrt"):
        assert op not in stripped, op
    assert any("LayerNorm" in n for n in real_names)
    assert not any("LayerNorm" in n for n in stripped_names)
    assert again == real
    assert jax.nn.softmax(jnp.zeros(2)).tolist() == [0.5, 0.5]


def test_matmul_shapes_are_each_layers_three_products():
    shapes = bert_step_bound.matmul_shapes(tokens=2048, hidden=384, intermediate=1536)
    assert len(shapes) == 9
    flops = sum(count * 2 * m * k * n for _, count, m, k, n in shapes)
    # q, k, v, attention output, intermediate, output; the two gradients cost a forward each.
    assert flops == 3 * 2 * 2048 * (4 * 384 * 384 + 2 * 384 * 1536)
    rows = [{"count": c, "shape": (m, k, n), "jax": 100.0} for _, c, m, k, n in shapes]
    assert bert_step_bound.dense_matmul_seconds(rows, 6, "jax") == pytest.approx(6 * flops / 1e11)


def test_tool_runs_on_a_tiny_encoder(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = bert_step_bound.main(
        ["--tiny", "--steps", "1", "--rounds", "1", "--seq", "16", "--torch-threads", "1"]
    )
    printed = capsys.readouterr().out
    assert "ours, no dropout, GELU, LayerNorm, softmax" in printed
    assert set(out["timed"]) == {
        "ours, as trained",
        "ours, no dropout",
        "ours, no dropout, GELU, LayerNorm, softmax",
    }
    assert all(math.isfinite(row["loss"]) for row in out["timed"].values())
    assert len(out["matmuls"]) == 9
