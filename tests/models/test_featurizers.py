"""Featurizers: spec parsing, hashing determinism, precomputed lookups, per-object caching."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from routellm_jax.data.records import Comparison, ComparisonTable
from routellm_jax.models import featurizers
from routellm_jax.models.featurizers import (
    HashingFeaturizer,
    comparison_arrays,
    featurizer_dim,
    make_embedding_featurizer,
)


def test_hashing_is_deterministic_normalised_and_similarity_aware():
    f = make_embedding_featurizer("hashing:256")
    prompts = ["What is the capital of France?", "what is the capital of france", "Write a poem"]
    emb = f.embed(prompts)
    assert emb.shape == (3, 256) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    # Same words (case/punctuation aside) -> same vector; unrelated prompt -> far away.
    np.testing.assert_allclose(emb[0], emb[1])
    assert emb[0] @ emb[2] < 0.5
    # Same across featurizer objects and processes (no salted hash()).
    np.testing.assert_array_equal(HashingFeaturizer(256).embed(prompts), emb)
    code = (
        "from routellm_jax.models.featurizers import HashingFeaturizer;"
        "print(HashingFeaturizer(256).embed(['Write a poem'])[0].tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == emb[2].tobytes().hex()
    # The empty prompt is the zero vector, not NaN.
    assert np.all(f.embed([""]) == 0)


def test_cache_is_per_object_and_counts_distinct_prompts():
    f = make_embedding_featurizer("hashing:32")
    calls = []
    original = f._embed_new
    f._embed_new = lambda ps, bs: calls.append(list(ps)) or original(ps, bs)
    f.embed(["a", "b", "a"])
    f.embed(["b", "c"])
    assert calls == [["a", "b"], ["c"]]
    assert set(f.cache) == {"a", "b", "c"}
    assert make_embedding_featurizer("hashing:32").cache == {}  # not shared
    assert f.embed([]).shape == (0, 32)
    with pytest.raises(TypeError):
        f.embed("a single string")


def test_precomputed_npz_and_parquet(tmp_path):
    rng = np.random.default_rng(0)
    prompts = ["p0", "p1", "p2"]
    matrix = rng.normal(size=(3, 1536)).astype(np.float32)
    npz = tmp_path / "emb.npz"
    np.savez(npz, prompts=np.array(prompts), embeddings=matrix)
    f = make_embedding_featurizer(f"precomputed:{npz}")
    assert f.dim == 1536
    np.testing.assert_array_equal(f.embed(["p2", "p0"]), matrix[[2, 0]])
    with pytest.raises(KeyError, match=r"emb\.npz.*'missing prompt'"):
        f.embed(["p1", "missing prompt"])

    pq_path = tmp_path / "emb.parquet"
    pq.write_table(
        pa.table({"prompt": prompts, "embedding": [list(map(float, r)) for r in matrix]}),
        pq_path,
    )
    g = make_embedding_featurizer(f"precomputed:{pq_path}")
    np.testing.assert_allclose(g.embed(["p1"]), matrix[[1]])

    bad = tmp_path / "bad.npz"
    np.savez(bad, prompts=np.array(prompts))
    with pytest.raises(ValueError, match="bad.npz.*embeddings"):
        make_embedding_featurizer(f"precomputed:{bad}")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        make_embedding_featurizer(f"precomputed:{tmp_path / 'nope.npz'}")


def test_bad_specs_and_dims():
    with pytest.raises(ValueError, match="hashing:x"):
        make_embedding_featurizer("hashing:x")
    with pytest.raises(ValueError, match="positive"):
        make_embedding_featurizer("hashing:0")
    with pytest.raises(ValueError):
        make_embedding_featurizer("")
    assert featurizer_dim("hashing:12") == 12
    assert featurizer_dim("all-MiniLM-L6-v2") == 384
    assert featurizer_dim("all-mpnet-base-v2") == 768
    assert featurizer_dim("precomputed:/x.npz") is None
    assert featurizer_dim("no-such-encoder") is None


def test_encoder_spec_wraps_the_embedder(monkeypatch):
    """An encoder name goes to load_embedder (lazily imported) and its vectors are cached."""
    import types

    class FakeEmbedder:
        dim = 4

        def __init__(self):
            self.calls = 0

        def embed(self, prompts, batch_size=64):
            self.calls += 1
            return np.ones((len(prompts), 4), np.float32) * np.arange(len(prompts))[:, None]

    fake = FakeEmbedder()
    module = types.ModuleType("routellm_jax.models.encoders.embedder")
    seen = {}

    def load_embedder(name="all-MiniLM-L6-v2", **kwargs):
        seen["name"] = name
        return fake

    module.load_embedder = load_embedder
    monkeypatch.setitem(sys.modules, "routellm_jax.models.encoders.embedder", module)
    f = make_embedding_featurizer("all-MiniLM-L6-v2")
    assert seen["name"] == "all-MiniLM-L6-v2" and f.dim == 4
    f.embed(["x", "y"])
    f.embed(["y", "x"])
    assert fake.calls == 1


def test_comparison_arrays_indexing_ties_and_unknown_models():
    table = ComparisonTable.from_records(
        [
            Comparison("q0", "a", "b", "a"),
            Comparison("q1", "b", "a", "a"),
            Comparison("q2", "a", "b", "tie"),
            Comparison("q3", "a", "zzz", "a"),  # unknown model: dropped
            Comparison("q4", "a", "a", "a"),  # self-battle: dropped
        ]
    )
    drop = comparison_arrays(table, ["a", "b"], ties="drop")
    assert drop["row"].tolist() == [0, 1]
    assert drop["model_a"].tolist() == [0, 1] and drop["label"].tolist() == [1.0, 1.0]
    half = comparison_arrays(table, ["b", "a"], ties="half")
    assert half["row"].tolist() == [0, 1, 2]
    assert half["model_a"].tolist() == [1, 0, 1] and half["label"].tolist() == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="ties"):
        comparison_arrays(table, ["a"], ties="keep")
    with pytest.raises(ValueError, match="empty"):
        featurizers.check_models((), "mf")


def test_shape_features_read_length_structure_and_are_deterministic():
    short, long_ = "Hi", "Prove that " + "the sum of two odd numbers is even and " * 20 + "why?"
    mcq = "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9"
    code = "Fix this:\n```python\ndef f(x):\n    return x +\n```"
    f = make_embedding_featurizer("shape")
    x = f.embed([short, long_, mcq, code])
    assert x.shape == (4, featurizers.SHAPE_DIM) == (4, featurizer_dim("shape"))
    col = {n: i for i, n in enumerate(featurizers.SHAPE_FEATURES)}
    assert x[1, col["log_words"]] > x[0, col["log_words"]] + 0.5  # length survives, in log scale
    assert x[2, col["choices"]] == 1.0 and x[1, col["choices"]] == 0.0
    assert x[3, col["code"]] == 1.0 and x[2, col["code"]] == 0.0
    assert x[2, col["digit_share"]] > 0 and x[0, col["digit_share"]] == 0
    assert x[1, col["question"]] == 1.0 and x[0, col["question"]] == 0.0
    # A pure function of the text: a fresh featurizer gives the same bytes.
    np.testing.assert_array_equal(make_embedding_featurizer("shape").embed([mcq]), x[2:3])
    assert np.all(np.isfinite(make_embedding_featurizer("shape").embed([""])))


def test_concat_spec_appends_shape_to_the_base_embedding():
    f = make_embedding_featurizer("hashing:16+shape")
    assert f.spec == "hashing:16+shape" and f.dim == 16 + featurizers.SHAPE_DIM
    assert featurizer_dim("hashing:16+shape") == f.dim
    assert featurizer_dim("all-MiniLM-L6-v2+shape") == 384 + featurizers.SHAPE_DIM
    assert featurizer_dim("all-mpnet-base-v2+shape") == 768 + featurizers.SHAPE_DIM
    prompts = ["a b c", "What is 2+2?\nA. 3\nB. 4"]
    out = f.embed(prompts)
    np.testing.assert_array_equal(
        out[:, :16], make_embedding_featurizer("hashing:16").embed(prompts)
    )
    np.testing.assert_array_equal(out[:, 16:], make_embedding_featurizer("shape").embed(prompts))
    # The store-facing part is the base encoder, never the concatenation.
    assert featurizers.encoder_part(f).spec == "hashing:16"
    assert featurizers.base_spec("all-MiniLM-L6-v2+shape") == "all-MiniLM-L6-v2"
