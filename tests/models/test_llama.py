"""Parity of the Flax Llama decoder with transformers' LlamaForCausalLM (torch, float32)."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax.models.encoders import llama

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


def _torch_model(tie: bool) -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**TINY, tie_word_embeddings=tie)
    model = transformers.LlamaForCausalLM(cfg).eval()
    # Random norms, so a scale loaded into the wrong place cannot go unnoticed.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
    return model


def _padded_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    lengths = [11, 7, 3, 11]
    ids = rng.integers(0, TINY["vocab_size"], size=(len(lengths), max(lengths)))
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    ids = np.where(mask == 1, ids, 0)
    return ids.astype(np.int32), mask.astype(np.int32)


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def saved(request, tmp_path_factory):
    model = _torch_model(request.param)
    path = tmp_path_factory.mktemp(f"llama_tie{request.param}")
    model.save_pretrained(path, safe_serialization=True)
    config, params = llama.load_hf_pretrained(path)
    return model, path, config, params


def test_parity_with_transformers_padded_batch(saved):
    model, _, config, params = saved
    assert config.tie_word_embeddings == model.config.tie_word_embeddings
    assert ("lm_head" in params) != config.tie_word_embeddings
    ids, mask = _padded_batch()
    with torch.no_grad():
        ref = model(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
        ).logits.numpy()
    module = llama.LlamaForCausalLM(config)
    logits, hidden = jax.jit(lambda p, i, m: module.apply({"params": p}, i, m, return_hidden=True))(
        params, ids, mask
    )
    assert logits.shape == (4, 11, TINY["vocab_size"])
    assert hidden.shape == (4, 11, TINY["hidden_size"])
    real = mask.astype(bool)  # padded positions are undefined in both implementations
    np.testing.assert_allclose(np.asarray(logits)[real], ref[real], atol=1e-4, rtol=1e-4)
    # Label-row scoring equals the matching columns of the full logits.
    rows = jnp.array([5, 17, 3])
    sub = jax.jit(
        lambda p, h, r: module.apply({"params": p}, h, r, method=module.logits_from_hidden)
    )(params, hidden, rows)
    np.testing.assert_allclose(sub, np.asarray(logits)[..., [5, 17, 3]], atol=1e-5)


def _apply(config, params, *args, dtype=jnp.float32):
    module = llama.LlamaForCausalLM(config, dtype=dtype)
    return jax.jit(lambda p, *a: module.apply({"params": p}, *a))(params, *args)


def test_left_padding_gives_same_logits_as_right_padding(saved):
    """Default positions count real tokens, so left padding matches an unpadded run."""
    _, _, config, params = saved
    ids = np.array([[3, 9, 27, 81, 2]], np.int32)
    ref = _apply(config, params, ids)
    left = np.array([[0, 0, 3, 9, 27, 81, 2]], np.int32)
    mask = np.array([[0, 0, 1, 1, 1, 1, 1]], np.int32)
    out = _apply(config, params, left, mask)
    np.testing.assert_allclose(out[:, 2:], ref, atol=1e-5)


def test_bfloat16_compute_is_close(saved):
    _, _, config, params = saved
    ids, mask = _padded_batch()
    f32 = _apply(config, params, ids, mask)
    bf16 = _apply(config, params, ids, mask, dtype=jnp.bfloat16)
    assert bf16.dtype == jnp.float32
    # Every matmul takes bf16 operands and accumulates into float32 (the form XLA:CPU runs
    # natively; a bf16 -> bf16 dot is upcast and runs slower than float32).
    module = llama.LlamaForCausalLM(config, dtype=jnp.bfloat16)
    hlo = jax.jit(lambda p: module.apply({"params": p}, ids, mask)).lower(params).as_text()
    dots = [line for line in hlo.splitlines() if "dot_general" in line]
    assert len(dots) >= 9  # q k v scores mix o gate up down (layers are scanned) + the lm head
    for line in dots:
        operands, result = line.rsplit("->", 1)
        assert "xf32>" not in operands and "xbf16>" in operands and "xf32>" in result, line
    real = mask.astype(bool)
    assert np.max(np.abs(np.asarray(bf16)[real] - np.asarray(f32)[real])) < 0.1


def test_importer_is_strict(saved, tmp_path):
    from safetensors.numpy import load_file, save_file

    _, path, _, _ = saved
    state = load_file(str(path / "model.safetensors"))
    config = llama.LlamaConfig.from_hf_config(path)
    # An extra tensor is an error naming it.
    extra = dict(state, **{"model.layers.0.self_attn.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match="self_attn.extra"):
        llama.params_from_hf_state_dict(extra, config)
    # A missing tensor names the parameter and layer.
    missing = {k: v for k, v in state.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(KeyError, match=r"mlp/up_proj/kernel in layer\(s\) \[1\]"):
        llama.params_from_hf_state_dict(missing, config)
    # A wrong shape names the parameter; the file shows up in the error.
    bad = dict(state)
    bad["model.norm.weight"] = np.ones(TINY["hidden_size"] + 1, np.float32)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    save_file(bad, str(bad_dir / "model.safetensors"))
    (bad_dir / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ValueError, match="norm/scale"):
        llama.load_hf_pretrained(bad_dir)
    # A config key missing names the file and key.
    cfg = json.loads((path / "config.json").read_text())
    del cfg["hidden_size"]
    (bad_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KeyError, match=re.escape("hidden_size")):
        llama.load_hf_pretrained(bad_dir)


def test_partition_rules_cover_every_param():
    from routellm_jax.training.sharding import LOGICAL_AXIS_RULES

    known = {name for name, _ in LOGICAL_AXIS_RULES}
    config = llama.LlamaConfig(**{**TINY, "tie_word_embeddings": False}, attention_bias=True)
    shapes = jax.eval_shape(lambda: llama.init_params(jax.random.key(0), config))
    for kp, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        path = "/".join(k.key for k in kp)
        rules = [axes for rx, axes in llama.LLAMA_PARTITION_RULES if re.search(rx, path)]
        assert rules, f"no partition rule for {path}"
        assert len(rules[0]) == leaf.ndim, f"{path}: rule {rules[0]} vs shape {leaf.shape}"
        assert set(rules[0]) - {None} <= known, f"{path}: {rules[0]} not in the sharding table"


def test_resize_vocab_appends_mean_rows():
    config = llama.LlamaConfig(**TINY)
    params = llama.init_params(jax.random.key(0), config)
    new, new_cfg = llama.resize_vocab(params, config, config.vocab_size + 5)
    assert new_cfg.vocab_size == config.vocab_size + 5
    emb = np.asarray(new["embed_tokens"]["embedding"])
    np.testing.assert_array_equal(emb[: config.vocab_size], params["embed_tokens"]["embedding"])
    np.testing.assert_allclose(
        emb[config.vocab_size :],
        np.broadcast_to(np.asarray(params["embed_tokens"]["embedding"]).mean(0), (5, 64)),
        atol=1e-8,
    )
    assert new["lm_head"]["kernel"].shape == (64, config.vocab_size + 5)
    ids = jnp.array([[1, 2, config.vocab_size + 4]])
    assert _apply(new_cfg, new, ids).shape == (1, 3, 133)
