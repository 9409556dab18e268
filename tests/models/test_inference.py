"""Declared fusion: a router runs encoder and head in one compiled function exactly when its
architecture declares an ``embedding_key`` and its featurizer a device encoding, and a router
that is not fused says why. A tiny random BERT with an in-memory word-level tokenizer stands in
for MiniLM, so no weights are fetched."""

from __future__ import annotations

import functools

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing

from routellm_jax.api import Router
from routellm_jax.models.encoders.bert import BertConfig, BertModel
from routellm_jax.models.encoders.embedder import BatchTokenizer, Embedder
from routellm_jax.models.executor import LENGTH_BUCKETS, bucket_grid
from routellm_jax.models.featurizers import (
    SHAPE_DIM,
    ConcatFeaturizer,
    DeviceEncoding,
    EncoderFeaturizer,
    ShapeFeaturizer,
    make_embedding_featurizer,
)
from routellm_jax.models.inference import device_encoding
from routellm_jax.models.registry import get_architecture
from routellm_jax.zoo.card import PAPER_STRONG, PAPER_WEAK

WORDS = "what is the sum of two and three prove that every prime number greater than".split()
PROMPTS = [
    "what is two",
    "prove that every prime",
    "the sum of two and three",
    "what",
    "prove the sum",
]


@functools.cache
def _tiny_embedder(max_length: int = 32) -> Embedder:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    vocab.update({w: i + 4 for i, w in enumerate(WORDS)})
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=max_length,
    )
    ids = np.zeros((1, 8), np.int32)
    params = BertModel(config, add_pooler=False).init(jax.random.key(0), ids, ids)["params"]
    buckets = bucket_grid(LENGTH_BUCKETS, max_length)
    return Embedder("tiny", config, params, BatchTokenizer(tok, max_length), "float32", buckets)


class _OpaqueEncoder:
    dim = 4

    def embed(self, prompts, batch_size=64):
        return np.ones((len(prompts), 4), np.float32)


def test_featurizers_declare_their_device_encoding() -> None:
    emb = _tiny_embedder()
    plain = EncoderFeaturizer("tiny", emb)
    assert plain.device_encoding() == DeviceEncoding(emb)
    shape = ShapeFeaturizer()
    with_shape = ConcatFeaturizer([plain, shape])
    assert with_shape.device_encoding() == DeviceEncoding(emb, (shape,))
    # Not on the device: weight-free featurizers, an encoder that is not a Flax Embedder, and a
    # second encoder after the first (it cannot run on the host beside it).
    assert "no encoder" in make_embedding_featurizer("hashing:8").device_encoding()
    assert "not a Flax Embedder" in EncoderFeaturizer("x", _OpaqueEncoder()).device_encoding()
    second = ConcatFeaturizer([plain, EncoderFeaturizer("y", _OpaqueEncoder())])
    assert "part 'y' is not computed on the host" in second.device_encoding()


def test_a_router_says_why_it_is_not_fused() -> None:
    mf = get_architecture("mf")
    fusable = ConcatFeaturizer([EncoderFeaturizer("tiny", _tiny_embedder()), ShapeFeaturizer()])
    assert isinstance(device_encoding(mf, fusable), DeviceEncoding)
    assert device_encoding(mf, fusable, fuse=False) == "not fused: fuse_encoder=False"
    bert = get_architecture("bert")  # runs its own encoder: no embedding_key
    assert "'bert' declares no embedding_key" in device_encoding(bert, fusable)
    assert "declares no device_encoding()" in device_encoding(mf, object())


@pytest.mark.parametrize("name", ["mf", "irt", "sw_ranking"])
def test_declared_embedding_key_is_what_prompt_inputs_gives(name: str) -> None:
    """The declaration the fused path trusts: ``prompt_inputs`` is exactly the featurizer's
    vectors under ``embedding_key`` (the fused function builds that dict itself)."""
    arch = get_architecture(name)
    cfg = arch.make_config(models=("a", "b"), featurizer="hashing:8", text_dim=8)
    featurizer = arch.make_featurizer(cfg)
    inputs = arch.prompt_inputs(PROMPTS, featurizer, cfg)
    assert arch.embedding_key and set(inputs) == {arch.embedding_key}
    np.testing.assert_array_equal(inputs[arch.embedding_key], featurizer.embed(PROMPTS))


@pytest.fixture(scope="module")
def routers():
    arch = get_architecture("mf")
    featurizer = ConcatFeaturizer([EncoderFeaturizer("tiny", _tiny_embedder()), ShapeFeaturizer()])
    cfg = arch.make_config(
        models=(PAPER_STRONG, PAPER_WEAK), text_dim=16 + SHAPE_DIM, dim=8, featurizer="tiny+shape"
    )
    params = arch.init(jax.random.key(1), cfg)
    fused = Router.from_params("mf", cfg, params, featurizer=featurizer)
    plain = Router.from_params("mf", cfg, params, featurizer=featurizer, fuse_encoder=False)
    return fused, plain


def test_fused_router_gives_the_host_featurizer_answer(routers) -> None:
    fused, plain = routers
    assert fused.stats["path"] == "fused" and "tiny (float32)" in fused.stats["path_reason"]
    assert plain.stats["path"] == "vectors" and "fuse_encoder=False" in plain.stats["path_reason"]
    want = plain.win_rate(PROMPTS)
    np.testing.assert_allclose(fused.win_rate(PROMPTS), want, atol=1e-5, rtol=0)
    # Rows sorted by length come back in the callers' order, host features included.
    np.testing.assert_allclose(fused.win_rate(PROMPTS[::-1]), want[::-1], atol=1e-5, rtol=0)
    stats = fused.stats
    assert stats["tokens"] > 0 and stats["padded_tokens"] >= stats["tokens"]
    compiles = stats["compiles"]
    fused.win_rate(PROMPTS)
    assert fused.stats["compiles"] == compiles  # warm: nothing recompiles


def test_loading_a_router_compiles_nothing_and_a_prompt_one_shape(routers) -> None:
    """Building a router (bfloat16 weights included) lowers nothing; the first single-prompt call
    lowers exactly its one fused shape (no device-scalar conversion, no probe)."""
    fused, _ = routers
    lowered = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        low = Router(fused.card, fused.params, featurizer=fused.featurizer, precision="bfloat16")
        at_load = len(lowered)
        low.win_rate(["what is two"])
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert at_load == 0, f"{at_load} functions lowered while loading"
    # One shape: lowered now, or loaded from the executor's store (an earlier run on this
    # machine kept it), never both.
    store = low.runner.executor.store
    assert len(lowered) + (store.hits if store else 0) == 1 and low.stats["compiles"] == 1


def test_bfloat16_precision_reaches_the_fused_encoder(routers) -> None:
    fused, _ = routers
    low = Router(fused.card, fused.params, featurizer=fused.featurizer, precision="bfloat16")
    assert low.runner.path == "fused" and low.runner.precision == "bfloat16"
    assert np.max(np.abs(low.win_rate(PROMPTS) - fused.win_rate(PROMPTS))) < 2e-2


def test_cast_ahead_casts_top_level_casts_only():
    from routellm_jax.models.inference import cast_ahead

    def forward(p, x):
        def layer(h, w):  # a scanned stack: cast inside the scan body, so kept
            return jnp.tanh(h.astype(jnp.bfloat16) @ w.astype(jnp.bfloat16)).astype(
                jnp.float32
            ), None

        h, _ = jax.lax.scan(layer, x, p["stack"])
        h = jax.jit(lambda h, s: h * s)(h, p["scale"])  # used as is inside a call: kept
        mixed = p["both"].astype(jnp.bfloat16).astype(jnp.float32) + p["both"]  # cast and used
        return h + mixed.sum(), p["returned"].astype(jnp.bfloat16)

    p = {
        "stack": jnp.ones((3, 2, 2)),
        "scale": jnp.ones(2),
        "both": jnp.ones(2),
        "returned": jnp.ones(2),
    }
    out = cast_ahead(forward, p, (jnp.ones((1, 2)),))
    assert {k: v.dtype.name for k, v in out.items()} == {
        "stack": "float32",
        "scale": "float32",
        "both": "float32",
        "returned": "bfloat16",  # only cast, then returned: the cast is still its only use
    }
    np.testing.assert_array_equal(
        forward(out, jnp.ones((1, 2)))[0], forward(p, jnp.ones((1, 2)))[0]
    )
