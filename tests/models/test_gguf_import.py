"""GGUF import round trip: a tiny random torch Llama written as GGUF the way llama.cpp does."""

from __future__ import annotations

import gguf
import jax
import numpy as np
import pytest

from routellm_jax.models.encoders import gguf_import, llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rope_theta=500.0,
    rms_norm_eps=1e-5,
)
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # Written out here independently of the module under test: convert_hf_to_gguf.py's
    # LlamaModel.permute (rows of each head: halves -> interleaved pairs).
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _write_gguf(model, path, *, tie: bool) -> None:
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(cfg.rope_theta if hasattr(cfg, "rope_theta") else 500.0)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_token_list([f"t{i}" for i in range(cfg.vocab_size)])  # a long array to skip
    writer.add_bos_token_id(1)
    for key, t in model.state_dict().items():
        w = t.detach().numpy().astype(np.float32)
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        elif key == "lm_head.weight":
            if tie:
                continue
            name = "output.weight"
        else:
            _, _, i, *rest = key.split(".")
            module = ".".join(rest[:-1])
            name = f"blk.{i}.{_LAYER_NAMES[module]}.{rest[-1]}"
            if module == "self_attn.q_proj":
                w = _llama_cpp_permute(w, cfg.num_attention_heads)
            elif module == "self_attn.k_proj":
                w = _llama_cpp_permute(w, cfg.num_key_value_heads)
        writer.add_tensor(name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def tiny_gguf(request, tmp_path_factory):
    tie = request.param
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**TINY, tie_word_embeddings=tie)
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("gguf") / f"tiny_tie{tie}.gguf"
    _write_gguf(model, path, tie=tie)
    return model, path


def test_permutation_inverse():
    w = np.arange(4 * 16 * 3, dtype=np.float32).reshape(4 * 16, 3)
    for heads in (1, 2, 4):
        p = gguf_import.permute_qk(w, heads)
        np.testing.assert_array_equal(p, _llama_cpp_permute(w, heads))
        np.testing.assert_array_equal(gguf_import.unpermute_qk(p, heads), w)


def test_gguf_round_trip_matches_torch(tiny_gguf):
    model, path = tiny_gguf
    config, params = gguf_import.load_gguf(path)
    assert config.tie_word_embeddings == model.config.tie_word_embeddings
    assert (config.num_hidden_layers, config.num_key_value_heads) == (2, 2)
    assert config.rope_theta == pytest.approx(500.0)
    assert config.bos_token_id == 1
    rng = np.random.default_rng(2)
    ids = rng.integers(0, TINY["vocab_size"], size=(3, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        ref = model(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
        ).logits.numpy()
    module = llama.LlamaForCausalLM(config)
    out = jax.jit(lambda p, i, m: module.apply({"params": p}, i, m))(params, ids, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(out)[real], ref[real], atol=1e-4, rtol=1e-4)


def test_reader_agrees_with_gguf_package(tiny_gguf):
    _, path = tiny_gguf
    meta, tensors = gguf_import.read_gguf(path, skip_arrays_longer_than=64)
    ref = gguf.GGUFReader(str(path))
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        if len(field.data) > 64:
            assert key not in meta  # the 128-entry token list
        else:
            assert meta[key] == field.contents(), key
    assert set(tensors) == {t.name for t in ref.tensors}
    for t in ref.tensors:
        np.testing.assert_array_equal(
            tensors[t.name].dequantize(), np.asarray(t.data).reshape(tensors[t.name].shape)
        )


def test_reader_errors_name_the_file(tmp_path, tiny_gguf):
    _, path = tiny_gguf
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ValueError, match="bad.gguf: not a GGUF file"):
        gguf_import.read_gguf(bad)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.gguf: truncated"):
        gguf_import.read_gguf(cut)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        gguf_import.load_gguf(tmp_path / "missing.gguf")
