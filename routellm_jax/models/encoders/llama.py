"""Llama-family decoder in Flax Linen, and its importer from Hugging Face safetensors.

One file, longer than most: the model and its safetensors importer share the parameter tree
documented below, and the importer's checks are written against it.

The model is a pure function of ``(params, input_ids, attention_mask)``: token embedding, then
``num_hidden_layers`` blocks of RMSNorm -> grouped-query attention with rotary position embeddings
(Hugging Face's ``rotate_half`` convention) -> residual, RMSNorm -> SwiGLU MLP -> residual, then a
final RMSNorm and the LM head (the transposed token embedding when ``tie_word_embeddings``, as in
SmolLM2). The blocks are one ``nn.scan``: their parameters are stacked along a leading ``layers``
axis, so compile time does not grow with depth.

Parameter tree (``L`` layers, ``H`` hidden, ``Q = heads * head_dim``, ``K = kv_heads * head_dim``)::

    embed_tokens/embedding                      [vocab, H]
    layers/input_layernorm/scale                [L, H]
    layers/self_attn/{q,k,v}_proj/kernel        [L, H, Q|K|K]   (+ bias [L, Q|K|K] if attention_bias)
    layers/self_attn/o_proj/kernel              [L, Q, H]
    layers/post_attention_layernorm/scale       [L, H]
    layers/mlp/{gate,up}_proj/kernel            [L, H, intermediate]
    layers/mlp/down_proj/kernel                 [L, intermediate, H]
    norm/scale                                  [H]
    lm_head/kernel                              [H, vocab]      (absent when tie_word_embeddings)

Kernels are ``[in, out]`` (the transpose of torch's ``Linear.weight``). :data:`LLAMA_PARTITION_RULES`
gives each its logical axis names for FSDP-style sharding.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file

Params = dict[str, Any]

# Logical axis names per parameter (regex over the "/"-joined path, searched anywhere so the rules
# still match when the decoder's params sit under a prefix such as "llama/"). The leading stacked
# layer axis is None (never split: each scan step needs its whole layer); names are those of
# routellm_jax.training.sharding.LOGICAL_AXIS_RULES.
LLAMA_PARTITION_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"(^|/)embed_tokens/embedding$", ("vocab", "embed")),
    (r"(^|/)layers/self_attn/q_proj/kernel$", (None, "embed", "heads")),
    (r"(^|/)layers/self_attn/q_proj/bias$", (None, "heads")),
    (r"(^|/)layers/self_attn/(k_proj|v_proj)/kernel$", (None, "embed", "kv_heads")),
    (r"(^|/)layers/self_attn/(k_proj|v_proj)/bias$", (None, "kv_heads")),
    (r"(^|/)layers/self_attn/o_proj/kernel$", (None, "heads", "embed")),
    (r"(^|/)layers/self_attn/o_proj/bias$", (None, "embed")),
    (r"(^|/)layers/mlp/(gate_proj|up_proj)/kernel$", (None, "embed", "mlp")),
    (r"(^|/)layers/mlp/(gate_proj|up_proj)/bias$", (None, "mlp")),
    (r"(^|/)layers/mlp/down_proj/kernel$", (None, "mlp", "embed")),
    (r"(^|/)layers/mlp/down_proj/bias$", (None, "embed")),
    (r"(^|/)layers/(input_layernorm|post_attention_layernorm)/scale$", (None, None)),
    (r"(^|/)norm/scale$", (None,)),
    (r"(^|/)lm_head/kernel$", ("embed", "vocab")),
)


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Shape and numerics of a Llama-family decoder (the fields of HF's ``LlamaConfig`` we use).

    Example:
        >>> cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
        ...                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
        >>> cfg.head_dim
        16
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim_: int | None = None  # None: hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return (
            self.head_dim_
            if self.head_dim_ is not None
            else (self.hidden_size // self.num_attention_heads)
        )

    def replace(self, **changes: Any) -> LlamaConfig:
        """A copy with some fields changed. Example: ``cfg.replace(vocab_size=133)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields. Example: ``LlamaConfig.from_dict(cfg.to_dict()) == cfg``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LlamaConfig:
        """Inverse of :meth:`to_dict`. Example: ``LlamaConfig.from_dict(cfg.to_dict())``."""
        return cls(**dict(d))

    @classmethod
    def from_hf_config(
        cls, hf: Mapping[str, Any] | str | os.PathLike[str], *, source: str = "config.json"
    ) -> LlamaConfig:
        """Build from a Hugging Face ``config.json`` (a dict, the file, or its directory).

        Example:
            >>> cfg = LlamaConfig.from_hf_config({"vocab_size": 128, "hidden_size": 64,
            ...     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            ...     "num_key_value_heads": 2, "tie_word_embeddings": True})
            >>> cfg.head_dim, cfg.tie_word_embeddings
            (16, True)
        """
        if not isinstance(hf, Mapping):
            path = Path(hf)
            if path.is_dir():
                path = path / "config.json"
            source = str(path)
            try:
                hf = json.loads(path.read_text())
            except FileNotFoundError:
                raise FileNotFoundError(f"{path}: no such config file") from None
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from err
        model_type = hf.get("model_type", "llama")
        if model_type not in ("llama", "mistral"):
            raise ValueError(f"{source}: model_type={model_type!r} is not a Llama-family decoder")
        rope_theta = hf.get("rope_theta")
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        if rope_theta is None:
            rope_theta = rope.get("rope_theta", 10000.0)
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", None):
            raise ValueError(
                f"{source}: rope type {rope_type!r} (key rope_scaling/rope_parameters) is not "
                "supported; only the default rotary embedding is implemented"
            )
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{source}: hidden_act={hf['hidden_act']!r}, expected 'silu'")
        if hf.get("pretraining_tp", 1) != 1:
            raise ValueError(f"{source}: pretraining_tp={hf['pretraining_tp']} is not supported")
        try:
            heads = int(hf["num_attention_heads"])
            return cls(
                vocab_size=int(hf["vocab_size"]),
                hidden_size=int(hf["hidden_size"]),
                intermediate_size=int(hf["intermediate_size"]),
                num_hidden_layers=int(hf["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim_=hf.get("head_dim"),
                rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope_theta),
                max_position_embeddings=int(hf.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                attention_bias=bool(hf.get("attention_bias", False)),
                mlp_bias=bool(hf.get("mlp_bias", False)),
                bos_token_id=_first_int(hf.get("bos_token_id")),
                eos_token_id=_first_int(hf.get("eos_token_id")),
                pad_token_id=_first_int(hf.get("pad_token_id")),
            )
        except KeyError as err:
            raise KeyError(f"{source}: missing key {err.args[0]!r}") from None


def _first_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return int(value)


# ----------------------------------------------------------------------------- modules


class RMSNorm(nn.Module):
    """``x / rms(x) * scale``, computed in float32 like HF's LlamaRMSNorm."""

    eps: float
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (scale * x32.astype(self.dtype)).astype(self.dtype)


def rope_cos_sin(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """Rotary tables for ``positions [batch, seq]`` -> ``cos, sin [batch, seq, head_dim]`` (float32).

    HF layout: the frequencies are repeated, ``concat(freqs, freqs)``, to pair with ``rotate_half``.

    Example:
        >>> cos, sin = rope_cos_sin(jnp.arange(4)[None], 8, 10000.0); cos.shape
        (1, 4, 8)
    """
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [b, s, head_dim/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def _rotate_half(x: jax.Array) -> jax.Array:
    half = x.shape[-1] // 2
    return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x [batch, seq, heads, head_dim]`` by ``cos/sin [batch, seq, head_dim]``."""
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + _rotate_half(x) * sin


def _dot_f32_accumulate(lhs: Any, rhs: Any, *args: Any, **kwargs: Any) -> jax.Array:
    """``lax.dot_general`` accumulating in float32, returned in the operands' dtype.

    A bf16 x bf16 -> f32 dot is the form XLA:CPU runs natively (AVX512-BF16/AMX); a bf16 -> bf16
    dot is upcast to float32 and back, slower than float32 itself (``tools/bench_infer.py``).
    """
    out = jax.lax.dot_general(lhs, rhs, *args, preferred_element_type=jnp.float32, **kwargs)
    return out.astype(lhs.dtype)


def _dense(features: int, use_bias: bool, dtype: Any, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nn.initializers.normal(0.02),
        dot_general=_dot_f32_accumulate,
        name=name,
    )


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE; ``mask [batch, 1, seq, keys]`` True = may attend.

    ``prefix_kv`` (``(k, v)``, each ``[1, prefix, kv_heads, head_dim]``, rotated) are keys/values
    of a prefix shared by every row, put before the row's own keys (then ``keys = prefix + seq``).
    The rotated keys/values of ``x`` are sown as ``intermediates/kv`` (kept only when the caller
    makes ``intermediates`` mutable), which is how a prefix's ``prefix_kv`` is computed.
    """

    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        prefix_kv: tuple[jax.Array, jax.Array] | None = None,
    ) -> jax.Array:
        cfg = self.config
        b, s, _ = x.shape
        nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        bias = cfg.attention_bias
        q = _dense(nh * hd, bias, self.dtype, "q_proj")(x).reshape(b, s, nh, hd)
        k = _dense(nkv * hd, bias, self.dtype, "k_proj")(x).reshape(b, s, nkv, hd)
        v = _dense(nkv * hd, bias, self.dtype, "v_proj")(x).reshape(b, s, nkv, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        self.sow("intermediates", "kv", (k, v))
        if prefix_kv is not None:
            pk, pv = (jnp.broadcast_to(t.astype(k.dtype), (b, *t.shape[1:])) for t in prefix_kv)
            k, v = jnp.concatenate([pk, k], axis=1), jnp.concatenate([pv, v], axis=1)
        groups = nh // nkv
        # HF's repeat_kv puts query head h on kv head h // groups: split heads as [kv, group].
        q = q.reshape(b, s, nkv, groups, hd)
        scores = jnp.einsum("bqkgd,btkd->bkgqt", q, k, preferred_element_type=jnp.float32)
        scores = scores * (hd**-0.5)
        # mask [b, 1, s, t] -> [b, 1, 1, s, t]; a fully masked row (a padding query) gets a
        # uniform softmax instead of NaN because the fill value is finite.
        scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = jnp.einsum("bkgqt,btkd->bqkgd", probs, v, preferred_element_type=jnp.float32)
        out = out.astype(self.dtype).reshape(b, s, nh * hd)
        return _dense(cfg.hidden_size, bias, self.dtype, "o_proj")(out)


class MLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``."""

    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        gate = _dense(cfg.intermediate_size, cfg.mlp_bias, self.dtype, "gate_proj")(x)
        up = _dense(cfg.intermediate_size, cfg.mlp_bias, self.dtype, "up_proj")(x)
        return _dense(cfg.hidden_size, cfg.mlp_bias, self.dtype, "down_proj")(nn.silu(gate) * up)


class DecoderLayer(nn.Module):
    """One pre-norm block; ``(carry, None)`` signature so it can be scanned."""

    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        prefix_kv: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, None]:
        eps = self.config.rms_norm_eps
        h = RMSNorm(eps, self.dtype, name="input_layernorm")(x)
        x = x + Attention(self.config, self.dtype, name="self_attn")(h, mask, cos, sin, prefix_kv)
        h = RMSNorm(eps, self.dtype, name="post_attention_layernorm")(x)
        x = x + MLP(self.config, self.dtype, name="mlp")(h)
        return x, None


class LlamaForCausalLM(nn.Module):
    """The decoder with its LM head.

    ``dtype`` is the compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32 and logits are
    returned in float32. ``remat`` recomputes each block in the backward pass (less memory).

    Example:
        >>> cfg = LlamaConfig(128, 64, 128, 2, 4, 2)
        >>> model = LlamaForCausalLM(cfg)
        >>> ids = jnp.ones((2, 5), jnp.int32)
        >>> params = init_params(jax.random.key(0), cfg)  # a jitted model.init
        >>> jax.jit(model.apply)({"params": params}, ids).shape
        (2, 5, 128)
    """

    config: LlamaConfig
    dtype: Any = jnp.float32
    remat: bool = False

    def setup(self) -> None:
        cfg = self.config
        self.embed_tokens = nn.Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            embedding_init=nn.initializers.normal(0.02),
        )
        layer = nn.remat(DecoderLayer, prevent_cse=False) if self.remat else DecoderLayer
        self.layers = nn.scan(
            layer,
            # intermediates: each layer's sown keys/values, stacked (see encode_prefix).
            variable_axes={"params": 0, "intermediates": 0},
            split_rngs={"params": True},
            # prefix_kv is per layer: scanned along its leading layers axis.
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, 0),
            length=cfg.num_hidden_layers,
        )(cfg, self.dtype)
        self.norm = RMSNorm(cfg.rms_norm_eps, self.dtype)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Dense(
                cfg.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=nn.initializers.normal(0.02),
                dot_general=_dot_f32_accumulate,
            )

    def encode(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array | None = None,
        position_ids: jax.Array | None = None,
        prefix_kv: tuple[jax.Array, jax.Array] | None = None,
    ) -> jax.Array:
        """Final-normed hidden states ``[batch, seq, hidden]``.

        ``attention_mask [batch, seq]`` (1 = token, 0 = padding) masks padded keys; queries see
        only earlier keys (causal). ``position_ids`` default to the count of real tokens before
        each position, so left and right padding both give real tokens positions 0, 1, ...

        ``prefix_kv`` (from :meth:`encode_prefix`: ``(k, v)``, each ``[layers, 1, P, kv_heads,
        head_dim]``) is a P-token prefix every row continues: each query also sees all of its
        keys, and positions start at P. The result equals encoding ``prefix + row`` and dropping
        the first P positions, at the cost of ``row`` only (a router's long instruction
        template, identical in every row, is computed once per batch instead of once per row).
        """
        b, s = input_ids.shape
        if attention_mask is None:
            attention_mask = jnp.ones((b, s), jnp.int32)
        valid = attention_mask.astype(bool)
        n_prefix = 0 if prefix_kv is None else prefix_kv[0].shape[2]
        if position_ids is None:
            position_ids = jnp.maximum(jnp.cumsum(valid.astype(jnp.int32), axis=-1) - 1, 0)
            position_ids = position_ids + n_prefix
        causal = jnp.tril(jnp.ones((s, s), bool))
        mask = causal[None, None] & valid[:, None, None, :]  # [b, 1, s(query), s(key)]
        if n_prefix:
            mask = jnp.concatenate([jnp.ones((b, 1, s, n_prefix), bool), mask], axis=-1)
        cos, sin = rope_cos_sin(position_ids, self.config.head_dim, self.config.rope_theta)
        x = self.embed_tokens(input_ids)  # [b, s, hidden]
        x, _ = self.layers(x, mask, cos, sin, prefix_kv)
        return self.norm(x)

    def encode_prefix(self, prefix_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Rotated keys/values of every layer for ``prefix_ids [P]`` (positions 0..P-1):
        ``(k, v)``, each ``[layers, 1, P, kv_heads, head_dim]``, for :meth:`encode`'s ``prefix_kv``.

        Call through ``apply(..., method=encode_prefix, mutable=["intermediates"])`` and read the
        sown values with :func:`prefix_kv_from_intermediates` (or use :func:`shared_prefix_kv`).
        """
        return self.encode(prefix_ids[None, :])

    def logits_from_hidden(
        self, hidden: jax.Array, token_ids: jax.Array | None = None
    ) -> jax.Array:
        """LM-head logits (float32) of ``hidden [..., hidden]``: all vocab, or only ``token_ids``.

        Scoring a few label tokens this way avoids the ``[batch, seq, vocab]`` product.
        """
        if not self.config.tie_word_embeddings and token_ids is None:
            return self.lm_head(hidden).astype(jnp.float32)
        if self.config.tie_word_embeddings:
            weight = self.embed_tokens.embedding  # [vocab, hidden]
        else:
            weight = self.lm_head.variables["params"]["kernel"].T  # [vocab, hidden]
        if token_ids is not None:
            weight = jnp.take(weight, token_ids, axis=0)
        return jnp.einsum(
            "...h,vh->...v",
            hidden.astype(self.dtype),
            weight.astype(self.dtype),
            preferred_element_type=jnp.float32,
        )

    def __call__(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array | None = None,
        position_ids: jax.Array | None = None,
        return_hidden: bool = False,
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Logits ``[batch, seq, vocab]`` (float32), and the last hidden states if asked."""
        hidden = self.encode(input_ids, attention_mask, position_ids)
        logits = self.logits_from_hidden(hidden)
        return (logits, hidden) if return_hidden else logits


def shared_prefix_kv(
    module: LlamaForCausalLM, params: Params, prefix_ids: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``prefix_kv`` for :meth:`LlamaForCausalLM.encode`: one pass over ``prefix_ids [P]``.

    Example:
        >>> cfg = LlamaConfig(128, 64, 128, 2, 4, 2); model = LlamaForCausalLM(cfg)
        >>> params = init_params(jax.random.key(0), cfg)
        >>> jax.jit(shared_prefix_kv, static_argnums=0)(model, params, jnp.arange(5))[0].shape
        (2, 1, 5, 2, 16)
    """
    _, state = module.apply(
        {"params": params}, prefix_ids, method=module.encode_prefix, mutable=["intermediates"]
    )
    ((k, v),) = state["intermediates"]["layers"]["self_attn"]["kv"]
    return k, v


def init_params(rng: jax.Array, config: LlamaConfig) -> Params:
    """Fresh random parameters (normal(0.02) weights, unit norms).

    Example:
        >>> params = init_params(jax.random.key(0), LlamaConfig(128, 64, 128, 2, 4, 2))
        >>> params["embed_tokens"]["embedding"].shape
        (128, 64)
    """
    ids = jnp.zeros((1, 2), jnp.int32)
    # jit: an eager init of the scanned blocks dispatches op by op and is much slower.
    return jax.jit(lambda key: LlamaForCausalLM(config).init(key, ids)["params"])(rng)


def count_params(params: Params) -> int:
    """Number of scalars in a parameter tree. Example: ``count_params(params)``."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def resize_vocab(
    params: Params, config: LlamaConfig, new_vocab_size: int
) -> tuple[Params, LlamaConfig]:
    """Grow the vocabulary to ``new_vocab_size``; new rows are the mean of the existing rows.

    Used to add label tokens (``[[1]]``..``[[5]]``). The mean row keeps the new tokens' initial
    logits close to the average logit, so fine-tuning starts from a calm point (HF's
    ``mean_resizing`` idea, without the covariance noise). Returns ``(params, config)``.

    Example:
        >>> cfg = LlamaConfig(4, 2, 8, 1, 1, 1)  # only the embedding and head matter here
        >>> params = {"embed_tokens": {"embedding": np.arange(8.0).reshape(4, 2)},
        ...           "lm_head": {"kernel": np.ones((2, 4))}}
        >>> p, c = resize_vocab(params, cfg, 6)
        >>> c.vocab_size, p["embed_tokens"]["embedding"][-2:].tolist(), p["lm_head"]["kernel"].shape
        (6, [[3.0, 4.0], [3.0, 4.0]], (2, 6))
    """
    old = config.vocab_size
    if new_vocab_size < old:
        raise ValueError(f"resize_vocab: new size {new_vocab_size} < current {old}")
    if new_vocab_size == old:
        return params, config
    extra = new_vocab_size - old
    params = jax.tree_util.tree_map(lambda x: x, params)  # shallow copy of the containers
    emb = jnp.asarray(params["embed_tokens"]["embedding"])
    rows = jnp.broadcast_to(emb.mean(axis=0, keepdims=True), (extra, emb.shape[1]))
    params["embed_tokens"] = {"embedding": jnp.concatenate([emb, rows.astype(emb.dtype)], axis=0)}
    if "lm_head" in params:
        kernel = jnp.asarray(params["lm_head"]["kernel"])  # [hidden, vocab]
        cols = jnp.broadcast_to(kernel.mean(axis=1, keepdims=True), (kernel.shape[0], extra))
        params["lm_head"] = {"kernel": jnp.concatenate([kernel, cols.astype(kernel.dtype)], axis=1)}
    return params, config.replace(vocab_size=new_vocab_size)


# ----------------------------------------------------------------------------- HF import

_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
# HF module path inside a layer -> our path under layers/ (and whether the weight is a Linear).
_LAYER_MAP: dict[str, tuple[tuple[str, ...], bool]] = {
    "input_layernorm": (("input_layernorm",), False),
    "post_attention_layernorm": (("post_attention_layernorm",), False),
    "self_attn.q_proj": (("self_attn", "q_proj"), True),
    "self_attn.k_proj": (("self_attn", "k_proj"), True),
    "self_attn.v_proj": (("self_attn", "v_proj"), True),
    "self_attn.o_proj": (("self_attn", "o_proj"), True),
    "mlp.gate_proj": (("mlp", "gate_proj"), True),
    "mlp.up_proj": (("mlp", "up_proj"), True),
    "mlp.down_proj": (("mlp", "down_proj"), True),
}
# Non-parameter buffers some older checkpoints carry; they are recomputed, never loaded.
_IGNORED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


def params_from_hf_state_dict(
    state: Mapping[str, Any],
    config: LlamaConfig,
    *,
    sources: Mapping[str, str] | None = None,
) -> Params:
    """Convert HF ``LlamaForCausalLM`` tensors (torch names, ``[out, in]`` weights) to our params.

    Strict: every tensor must be used and have the shape ``config`` implies, and every parameter
    must be present; errors name the key and (via ``sources``: key -> file) the file it came from.
    A tied ``lm_head.weight`` is accepted only if it equals the embedding.
    """
    sources = sources or {}

    def where(key: str) -> str:
        return f"{key!r} in {sources[key]}" if key in sources else repr(key)

    expected = jax.eval_shape(lambda: init_params(jax.random.key(0), config))
    layers: dict[tuple[str, ...], list[np.ndarray | None]] = {}
    out: dict[tuple[str, ...], np.ndarray] = {}
    L = config.num_hidden_layers
    for key, value in state.items():
        if _IGNORED.search(key):
            continue
        arr = np.asarray(_to_numpy(value), dtype=np.float32)
        m = _LAYER_KEY.match(key)
        if m:
            i, module, kind = int(m.group(1)), m.group(2), m.group(3)
            if module not in _LAYER_MAP or i >= L:
                raise KeyError(f"unexpected tensor {where(key)} (config has {L} layers)")
            path, linear = _LAYER_MAP[module]
            leaf = ("kernel" if linear else "scale") if kind == "weight" else "bias"
            if linear and kind == "weight":
                arr = arr.T
            slot = layers.setdefault(("layers", *path, leaf), [None] * L)
            slot[i] = arr
            continue
        if key == "model.embed_tokens.weight":
            out[("embed_tokens", "embedding")] = arr
        elif key == "model.norm.weight":
            out[("norm", "scale")] = arr
        elif key == "lm_head.weight":
            if config.tie_word_embeddings:
                emb = state.get("model.embed_tokens.weight")
                if emb is None or not np.array_equal(np.asarray(_to_numpy(emb)), _to_numpy(value)):
                    raise ValueError(
                        f"{where(key)}: tie_word_embeddings=True but lm_head.weight differs "
                        "from model.embed_tokens.weight"
                    )
                continue
            out[("lm_head", "kernel")] = arr.T
        else:
            raise KeyError(f"unexpected tensor {where(key)}")
    for path, slot in layers.items():
        missing = [i for i, a in enumerate(slot) if a is None]
        if missing:
            raise KeyError(f"missing tensor for {'/'.join(path)} in layer(s) {missing}")
        out[path] = np.stack(slot)

    params: dict[str, Any] = {}
    flat_expected = {
        tuple(getattr(k, "key", k) for k in kp): v
        for kp, v in jax.tree_util.tree_flatten_with_path(expected)[0]
    }
    for path, spec in flat_expected.items():
        if path not in out:
            raise KeyError(f"checkpoint has no tensor for parameter {'/'.join(path)}")
        arr = out.pop(path)
        if arr.shape != spec.shape:
            raise ValueError(
                f"parameter {'/'.join(path)}: checkpoint shape {arr.shape} != expected "
                f"{spec.shape} from the config"
            )
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = jnp.asarray(arr)
    if out:
        raise KeyError(f"tensors not used by the model: {sorted('/'.join(p) for p in out)}")
    return params


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def load_hf_pretrained(path: str | os.PathLike[str]) -> tuple[LlamaConfig, Params]:
    """Load ``config.json`` + ``model.safetensors`` (or a sharded ``model.safetensors.index.json``)."""

    root = Path(path)
    config = LlamaConfig.from_hf_config(root)
    index = root / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ValueError(f"{index}: not a safetensors index ({err})") from err
        files = sorted(set(weight_map.values()))
    elif (root / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{root}: no model.safetensors or model.safetensors.index.json")
    state: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for name in files:
        file = root / name
        try:
            tensors = _load_safetensors(file, load_file)
        except FileNotFoundError:
            raise FileNotFoundError(f"{file}: listed in the index but missing") from None
        for key, value in tensors.items():
            if key in state:
                raise ValueError(f"tensor {key!r} appears in both {sources[key]} and {file}")
            state[key] = value
            sources[key] = str(file)
    return config, params_from_hf_state_dict(state, config, sources=sources)


def _load_safetensors(file: Path, load_file: Any) -> dict[str, np.ndarray]:
    try:
        return load_file(str(file))
    except TypeError:
        # numpy has no bfloat16: fall back to torch for bf16 checkpoints.
        from safetensors.torch import load_file as load_torch  # local: torch loads slowly

        return {k: _to_numpy(v) for k, v in load_torch(str(file)).items()}
    except FileNotFoundError:
        raise
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{file}: not a readable safetensors file ({err})") from err
