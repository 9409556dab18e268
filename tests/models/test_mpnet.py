"""MPNet (all-mpnet-base-v2's encoder) through the BERT encoder's options: parity with torch
``transformers.MPNetModel`` on random weights (float32 at 1e-4, bfloat16 within a stated bound),
the relative position buckets, the importer and the written-out parameter template."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax.models.encoders.bert import (
    BertConfig,
    BertModel,
    count_params,
    l2_normalize,
    mean_pool,
    relative_position_buckets,
)
from routellm_jax.models.encoders.embedder import encode
from routellm_jax.models.encoders.hf_import import CheckpointError, bert_template, load_bert

MPNET_HF_CONFIG = {
    "model_type": "mpnet",
    "vocab_size": 91,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "max_position_embeddings": 66,
    "pad_token_id": 1,
    "relative_attention_num_buckets": 32,
    "layer_norm_eps": 1e-5,
}


def test_mpnet_config_from_hf_dict() -> None:
    cfg = BertConfig.from_hf_dict(MPNET_HF_CONFIG)
    assert cfg.type_vocab_size == 0 and cfg.positions_after_padding
    assert (cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance) == (32, 128)
    assert cfg.max_sequence_length == 64  # 66 positions, the first two reserved by the padding id
    no_buckets = {k: v for k, v in MPNET_HF_CONFIG.items() if k != "relative_attention_num_buckets"}
    with pytest.raises(KeyError, match="relative_attention_num_buckets"):
        BertConfig.from_hf_dict(no_buckets, source="x/config.json")


@pytest.mark.parametrize("add_pooler", [True, False])
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_mpnet_template_equals_the_traced_init(add_pooler, param_dtype) -> None:
    cfg = BertConfig.from_hf_dict(MPNET_HF_CONFIG)
    model = BertModel(cfg, param_dtype=param_dtype, add_pooler=add_pooler)
    ids = jax.ShapeDtypeStruct((1, 5), jnp.int32)
    traced = jax.eval_shape(lambda i: model.init(jax.random.key(0), i, i), ids)["params"]
    written = bert_template(cfg, add_pooler=add_pooler, param_dtype=param_dtype)
    assert "token_type_embeddings" not in traced["embeddings"]
    assert traced["encoder"]["relative_attention_bias"]["embedding"].shape == (32, 4)
    assert jax.tree_util.tree_structure(written) == jax.tree_util.tree_structure(traced)
    for a, b in zip(jax.tree_util.tree_leaves(written), jax.tree_util.tree_leaves(traced)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)


torch = pytest.importorskip("torch", reason="torch is the parity reference (dev extra)")
transformers = pytest.importorskip("transformers")

TOL = 1e-4
BF16_COSINE = 0.99  # bf16 matmul operands: embeddings stay within this cosine of float32


def test_relative_position_buckets_match_transformers() -> None:
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    for length in (1, 7, 130, 600):
        pos = torch.arange(length)
        ref = MPNetEncoder.relative_position_bucket(pos[None, :] - pos[:, None])
        np.testing.assert_array_equal(relative_position_buckets(length, 32, 128), ref.numpy())


@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    hf_cfg = {k: v for k, v in MPNET_HF_CONFIG.items() if k != "model_type"}
    model = transformers.MPNetModel(transformers.MPNetConfig(**hf_cfg)).eval()
    # Non-trivial LayerNorm/bias values and a large relative bias, so a wrong mapping or bucket
    # cannot hide behind ones, zeros or a bias too small to matter.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    folder = tmp_path_factory.mktemp("tiny_mpnet")
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _padded_batch(lengths: list[int], vocab: int, seq: int, pad_id: int = 1, seed: int = 0):
    """Right-padded rows of random non-pad ids (RoBERTa-style positions skip the pad id)."""
    rng = np.random.default_rng(seed)
    ids = np.full((len(lengths), seq), pad_id, np.int32)
    mask = np.zeros((len(lengths), seq), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(pad_id + 1, vocab, size=n)
        mask[i, :n] = 1
    return ids, mask


def _torch_reference(folder: Path, ids: np.ndarray, mask: np.ndarray):
    model = transformers.MPNetModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
        )
    hidden = out.last_hidden_state
    m = torch.from_numpy(mask)[..., None].float()
    pooled = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
    sentence = torch.nn.functional.normalize(pooled, dim=-1)
    count = sum(p.numel() for p in model.parameters())
    return hidden.numpy(), sentence.numpy(), out.pooler_output.numpy(), count


def test_tiny_random_mpnet_matches_torch(tiny_mpnet: Path) -> None:
    ids, mask = _padded_batch([3, 40, 1, 64, 17], vocab=91, seq=64)
    ref_hidden, ref_sentence, ref_pooler, torch_count = _torch_reference(tiny_mpnet, ids, mask)
    cfg, params = load_bert(tiny_mpnet)
    assert cfg.model_type == "mpnet" and cfg.layer_norm_eps == 1e-5
    hidden, pooler = BertModel(cfg).apply({"params": params}, ids, mask)
    sentence = l2_normalize(mean_pool(hidden, mask))
    # Compare token outputs where the mask is on (transformers leaves padded rows' values to
    # whatever a fully masked softmax gives; nothing downstream reads them).
    on = mask.astype(bool)
    assert np.max(np.abs(np.asarray(hidden)[on] - ref_hidden[on])) < TOL
    assert np.max(np.abs(np.asarray(sentence) - ref_sentence)) < TOL
    assert np.max(np.abs(np.asarray(pooler) - ref_pooler)) < TOL
    assert count_params(params) == torch_count
    # encode(): the pooler-less path the embedder runs gives the same sentence vectors.
    _, no_pooler = load_bert(tiny_mpnet, add_pooler=False)
    got = np.asarray(encode(no_pooler, ids, mask, cfg))
    assert np.max(np.abs(got - ref_sentence)) < TOL


def test_mpnet_relative_bias_and_positions_matter(tiny_mpnet: Path) -> None:
    """The parity above is not vacuous: without the relative bias, or with BERT's positions, the
    output moves by more than ten times the tolerance."""
    import dataclasses

    ids, mask = _padded_batch([20, 9], vocab=91, seq=20, seed=2)
    cfg, params = load_bert(tiny_mpnet, add_pooler=False)
    ref = np.asarray(encode(params, ids, mask, cfg))
    no_bias = dataclasses.replace(cfg, relative_attention_num_buckets=0)
    stripped = {**params, "encoder": dict(params["encoder"])}
    stripped["encoder"].pop("relative_attention_bias")
    assert np.max(np.abs(np.asarray(encode(stripped, ids, mask, no_bias)) - ref)) > 10 * TOL
    bert_positions = dataclasses.replace(cfg, positions_after_padding=False)
    assert np.max(np.abs(np.asarray(encode(params, ids, mask, bert_positions)) - ref)) > 10 * TOL


def test_mpnet_bf16_stays_close(tiny_mpnet: Path) -> None:
    ids, mask = _padded_batch([5, 33, 12], vocab=91, seq=33, seed=1)
    ref_sentence = _torch_reference(tiny_mpnet, ids, mask)[1]
    cfg, params = load_bert(tiny_mpnet, add_pooler=False, param_dtype=jnp.bfloat16)
    got = np.asarray(encode(params, ids, mask, cfg, dtype=jnp.bfloat16))
    assert got.dtype == np.float32
    assert np.min(np.sum(got * ref_sentence, axis=-1)) > BF16_COSINE
    # Every matmul takes bf16 operands and accumulates into float32, as for BERT.
    hlo = jax.jit(lambda p: encode(p, ids, mask, cfg, dtype=jnp.bfloat16)).lower(params).as_text()
    dots = [line for line in hlo.splitlines() if "dot_general" in line]
    assert len(dots) == cfg.num_hidden_layers * 8
    for line in dots:
        operands, result = line.rsplit("->", 1)
        assert "xf32>" not in operands and "xbf16>" in operands and "xf32>" in result, line


def test_mpnet_import_is_strict(tiny_mpnet: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(tiny_mpnet / "model.safetensors")
    tensors.pop("encoder.relative_attention_bias.weight")
    tmp_path.joinpath("config.json").write_text((tiny_mpnet / "config.json").read_text())
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="encoder/relative_attention_bias/embedding"):
        load_bert(tmp_path)
    config = json.loads((tiny_mpnet / "config.json").read_text())
    assert config["model_type"] == "mpnet"  # transformers wrote the key the importer dispatches on


WORDS = ["<s>", "<pad>", "</s>", "[UNK]", *(f"w{i}" for i in range(80))]


@pytest.fixture(scope="module")
def tiny_mpnet_encoder(tiny_mpnet: Path, tmp_path_factory) -> Path:
    """The tiny checkpoint as a sentence-transformers folder: a fast tokenizer whose
    post-processor adds ``<s> ... </s>`` (MPNet's), pad id 1, and a 24-token ``max_seq_length``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    folder = tmp_path_factory.mktemp("tiny_mpnet_encoder")
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny_mpnet / name).read_bytes())
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 24}')
    return folder


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = [1, 5, 40, 13, 2, 22, 9][:n]  # 40 words: truncated at 24 tokens
    return [" ".join(f"w{i}" for i in rng.integers(0, 80, size=k)) for k in lengths]


def test_embedder_on_mpnet_matches_torch_sentence_vectors(
    tiny_mpnet_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_embedder / the featurizer spec on an MPNet folder: the folder's max_seq_length, pad id
    1 in length buckets with padded rows, and the same vectors as transformers on the same ids."""
    from routellm_jax.models import featurizers
    from routellm_jax.models.encoders import embedder as embedder_module

    prompts = _sentences(7)
    emb = embedder_module.load_embedder("all-mpnet-base-v2", folder=tiny_mpnet_encoder)
    assert (emb.max_length, emb.tokenizer.pad_id, emb.dim) == (24, 1, 32)
    ids = emb.tokenizer.encode_ids(prompts)
    assert ids[0].tolist()[0] == 0 and ids[0].tolist()[-1] == 2 and max(map(len, ids)) == 24
    got = emb.embed(prompts, batch_size=3)  # chunks of mixed lengths, padded rows included
    padded, mask = emb.tokenizer(prompts, 24)
    want = _torch_reference(tiny_mpnet_encoder, padded, mask)[1]
    assert np.max(np.abs(got - want)) < TOL
    # The featurizer spec reaches the same embedder by name (the fetch is the only stand-in).
    monkeypatch.setattr(
        embedder_module, "fetch_encoder", lambda name, cache_dir: tiny_mpnet_encoder
    )
    feat = featurizers.make_embedding_featurizer("all-mpnet-base-v2+shape")
    out = feat.embed(prompts)
    assert out.shape == (7, 32 + featurizers.SHAPE_DIM)
    np.testing.assert_allclose(out[:, :32], got, atol=1e-6)
    assert featurizers.encoder_part(feat).spec == "all-mpnet-base-v2"


def test_bert_router_tokenizer_pads_with_the_encoders_pad_id(tiny_mpnet_encoder: Path) -> None:
    from routellm_jax.models.bert_classifier import BertClassifierConfig, make_featurizer

    tok = make_featurizer(BertClassifierConfig(encoder=str(tiny_mpnet_encoder), max_length=16))
    ids, mask = tok(["w1 w2"], 6)
    assert ids.tolist() == [[0, WORDS.index("w1"), WORDS.index("w2"), 2, 1, 1]]
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0]]
