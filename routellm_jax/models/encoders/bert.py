"""A BERT-family encoder as pure Flax Linen modules (MiniLM, BERT-base, MPNet, ...).

The parameter tree mirrors the Hugging Face ``BertModel`` layout so the importer
(:mod:`routellm_jax.models.encoders.hf_import`) is a mechanical rename + transpose::

    embeddings/{word_embeddings,position_embeddings,token_type_embeddings}/embedding
    embeddings/LayerNorm/{scale,bias}
    encoder/layer_<i>/attention/self/{query,key,value}/{kernel,bias}
    encoder/layer_<i>/attention/output/dense/{kernel,bias}, .../output/LayerNorm/{scale,bias}
    encoder/layer_<i>/intermediate/dense/{kernel,bias}
    encoder/layer_<i>/output/dense/{kernel,bias}, encoder/layer_<i>/output/LayerNorm/{scale,bias}
    encoder/relative_attention_bias/embedding        (only with relative position buckets)
    pooler/dense/{kernel,bias}                       (only with ``add_pooler=True``)

MPNet (all-mpnet-base-v2) is the same post-LN encoder with three options of :class:`BertConfig`:
no token-type table (``type_vocab_size=0``), RoBERTa-style position ids (``positions_after_padding``:
non-pad tokens count from ``pad_token_id + 1``) and a T5-style bidirectional relative position
bias (``relative_attention_num_buckets``): one ``[buckets, heads]`` table shared by every layer,
added to every layer's attention scores.

``dtype`` is the dtype of the matmul operands; ``param_dtype`` the storage dtype. Every matmul
accumulates and returns float32 (``preferred_element_type``), and everything between the matmuls
(the residual stream, LayerNorm, GELU, softmax, pooling) runs in float32, so ``bfloat16`` is the
usual mixed-precision recipe and stays close to the float32 encoder. That is also what makes it
fast on CPU: XLA:CPU runs a bf16 x bf16 -> f32 dot natively on CPUs with AVX512-BF16 or AMX, but
upcasts a bf16 x bf16 -> bf16 dot to float32 and back, which made the old all-bf16 encoder slower
than float32 (``tools/bench_infer.py`` measures both; docs/benchmarks.md has the numbers).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Activations by their Hugging Face ``hidden_act`` name. HF "gelu" is the exact (erf) GELU.
_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Shape and hyper-parameters of a BERT encoder (the fields of HF ``config.json``).

    Example:
        >>> BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
        ...            num_attention_heads=4, intermediate_size=64).head_dim
        8
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    # MPNet's options (see the module doc); the defaults are BERT's. type_vocab_size=0 drops the
    # token-type table.
    positions_after_padding: bool = False
    relative_attention_num_buckets: int = 0  # 0: no relative position bias
    relative_attention_max_distance: int = 128
    model_type: str = "bert"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(
                f"hidden_act {self.hidden_act!r} not supported; known: {sorted(_ACTIVATIONS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_sequence_length(self) -> int:
        """The longest input the position table covers (RoBERTa-style positions start after
        ``pad_token_id``, so MPNet's 514 positions hold 512 tokens).

        Example:
            >>> BertConfig.from_hf_dict({"model_type": "mpnet", "vocab_size": 10, "hidden_size": 8,
            ...     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
            ...     "max_position_embeddings": 514, "pad_token_id": 1,
            ...     "relative_attention_num_buckets": 32}).max_sequence_length
            512
        """
        if self.positions_after_padding:
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config") -> BertConfig:
        """Build from a parsed HF ``config.json`` (unknown keys are ignored, missing required ones
        are an error naming ``source``).

        Example:
            >>> BertConfig.from_hf_dict({"vocab_size": 10, "hidden_size": 8,
            ...     "num_hidden_layers": 1, "num_attention_heads": 2,
            ...     "intermediate_size": 16}).num_hidden_layers
            1
        """
        model_type = d.get("model_type", "bert")
        if model_type not in ("bert", "mpnet"):
            raise ValueError(f"{source}: model_type {model_type!r} is not a BERT or MPNet encoder")
        pet = d.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ValueError(f"{source}: position_embedding_type {pet!r} not supported")
        names = {f.name for f in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if model_type == "mpnet":
            required.append("relative_attention_num_buckets")
        missing = [k for k in required if k not in d]
        if missing:
            raise KeyError(f"{source}: missing key(s) {missing}")
        kwargs = {k: v for k, v in d.items() if k in names}
        if kwargs.get("pad_token_id") is None:
            kwargs.pop("pad_token_id", None)
        if model_type == "mpnet":
            # transformers' MPNetModel: no token types, positions after the padding id, and a
            # relative bias whose max distance is fixed in its code (not a config key).
            kwargs.update(type_vocab_size=0, positions_after_padding=True)
            kwargs.setdefault("relative_attention_max_distance", 128)
            kwargs["model_type"] = "mpnet"
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from err

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> BertConfig:
        """Read an HF ``config.json``.

        Example:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     path = Path(tmp) / "config.json"
            ...     _ = path.write_text(json.dumps({"vocab_size": 128, "hidden_size": 32,
            ...         "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64}))
            ...     BertConfig.from_json(path).hidden_size
            32
        """
        path = Path(path)
        with open(path, encoding="utf-8") as f:
            return cls.from_hf_dict(json.load(f), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Logical axis names per parameter dim ("/"-joined path regex -> names), see registry.py.
# Unmatched parameters (LayerNorm, biases) are small and stay replicated.
BERT_PARTITION_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"embeddings/word_embeddings/embedding$", ("vocab", "embed")),
    (r"embeddings/(position|token_type)_embeddings/embedding$", (None, "embed")),
    (r"attention/self/(query|key|value)/kernel$", ("embed", "heads")),
    (r"attention/self/(query|key|value)/bias$", ("heads",)),
    (r"attention/output/dense/kernel$", ("heads", "embed")),
    (r"intermediate/dense/kernel$", ("embed", "mlp")),
    (r"intermediate/dense/bias$", ("mlp",)),
    (r"layer_\d+/output/dense/kernel$", ("mlp", "embed")),
    (r"pooler/dense/kernel$", ("embed", None)),
    (r"encoder/relative_attention_bias/embedding$", (None, None)),
)


# CPU features under which XLA:CPU runs a bf16 x bf16 -> f32 dot natively (/proc/cpuinfo names).
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16_matmul(device: jax.Device | None = None, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether ``device`` (default: the first) multiplies bf16 matrices natively, so a
    ``bfloat16`` encoder runs faster than float32 there: TPUs, NVIDIA GPUs from compute
    capability 8.0 on, and CPUs with AVX512-BF16 or AMX-BF16 (read from ``cpuinfo``; False when
    it cannot be read). Elsewhere bf16 operands are upcast and only cost time.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix="cpuinfo") as f:
        ...     _ = f.write("flags : fpu avx512f avx512_bf16"); f.flush()
        ...     native_bf16_matmul(jax.devices("cpu")[0], f.name)
        True
        >>> native_bf16_matmul(jax.devices("cpu")[0], "/nonexistent")
        False
    """
    device = device or jax.devices()[0]
    if device.platform == "tpu":
        return True
    if device.platform == "gpu":
        capability = getattr(device, "compute_capability", "0")
        return float(capability or 0) >= 8.0
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


# Matmuls take ``dtype`` operands and accumulate into (and return) float32; see the module doc.
_F32_DOT = functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32)


def _backward_specs(spec: str) -> tuple[str, str]:
    """The einsums giving the two operands' cotangents of ``spec`` (``"ab,bc->ac"``) from the
    output's. Every index must reach the output or the other operand (matmuls, batched or not).

    Example:
        >>> _backward_specs("bqhd,bkhd->bhqk")
        ('bhqk,bkhd->bqhd', 'bqhd,bhqk->bkhd')
    """
    operands, out = spec.split("->")
    lhs, rhs = operands.split(",")
    for mine, other in ((lhs, rhs), (rhs, lhs)):
        lost = set(mine) - set(out) - set(other)
        if lost:
            raise ValueError(f"einsum {spec!r}: index {sorted(lost)} is summed within one operand")
    return f"{out},{rhs}->{lhs}", f"{lhs},{out}->{rhs}"


def _f32_einsum(spec: str, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """``einsum(spec, lhs, rhs)`` accumulated into float32, as one ``dot_general`` whose operands
    are laid out ``lhs [batch, free, contracted]`` and ``rhs [batch, contracted, free]``.

    XLA:CPU hands a bf16 x bf16 -> f32 dot whose lhs contracts a leading dimension to a generic
    dot kernel that rejects those types, and autodiff's transposes make exactly such dots; in
    this layout every dot goes to its matmul library, whatever the dtype.

    Example:
        >>> _f32_einsum("bqd,bkd->bqk", jnp.ones((2, 3, 4)), jnp.ones((2, 5, 4))).shape
        (2, 3, 5)
    """
    operands, out = spec.split("->")
    lhs_idx, rhs_idx = operands.split(",")
    batch = [c for c in lhs_idx if c in rhs_idx and c in out]
    contracted = [c for c in lhs_idx if c in rhs_idx and c not in out]
    lhs_free = [c for c in lhs_idx if c not in rhs_idx]
    rhs_free = [c for c in rhs_idx if c not in lhs_idx]
    lhs = jnp.transpose(lhs, [lhs_idx.index(c) for c in batch + lhs_free + contracted])
    rhs = jnp.transpose(rhs, [rhs_idx.index(c) for c in batch + contracted + rhs_free])
    nb, nf, nc = len(batch), len(lhs_free), len(contracted)
    dims = (
        (tuple(range(nb + nf, nb + nf + nc)), tuple(range(nb, nb + nc))),
        (tuple(range(nb)), tuple(range(nb))),
    )
    y = jax.lax.dot_general(lhs, rhs, dims, preferred_element_type=jnp.float32)
    y_idx = batch + lhs_free + rhs_free
    return jnp.transpose(y, [y_idx.index(c) for c in out])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def mixed_einsum(spec: str, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """``einsum(spec, lhs, rhs)`` accumulated into float32, whose gradients are einsums in the
    operands' dtype too.

    Plain autodiff of a bf16 x bf16 -> f32 einsum makes the backward einsums take the float32
    cotangent and upcast the bf16 operand: two thirds of a training step's matmul work back in
    float32. Here the cotangent is cast to the operands' dtype first (what bf16 autocast does),
    so the forward and both backward einsums run as bf16 x bf16 -> f32; each operand's cotangent
    comes back in its own dtype. Float32 operands get exactly autodiff's einsums.

    Example:
        >>> a = jnp.ones((2, 3), jnp.bfloat16); b = jnp.ones((3, 4), jnp.bfloat16)
        >>> mixed_einsum("ik,kj->ij", a, b).dtype
        dtype('float32')
        >>> loss = lambda a, b: mixed_einsum("ik,kj->ij", a, b).sum()
        >>> [g.dtype.name for g in jax.grad(loss, argnums=(0, 1))(a, b)]
        ['bfloat16', 'bfloat16']
    """
    _backward_specs(spec)  # refuses an index summed within one operand
    return _f32_einsum(spec, lhs, rhs)


def _mixed_einsum_fwd(spec: str, lhs: jax.Array, rhs: jax.Array) -> tuple[jax.Array, Any]:
    return mixed_einsum(spec, lhs, rhs), (lhs, rhs)


def _mixed_einsum_bwd(spec: str, res: Any, ct: jax.Array) -> tuple[jax.Array, jax.Array]:
    lhs, rhs = res
    lhs_spec, rhs_spec = _backward_specs(spec)
    d_lhs = _f32_einsum(lhs_spec, ct.astype(rhs.dtype), rhs)
    d_rhs = _f32_einsum(rhs_spec, lhs, ct.astype(lhs.dtype))
    return d_lhs.astype(lhs.dtype), d_rhs.astype(rhs.dtype)


mixed_einsum.defvjp(_mixed_einsum_fwd, _mixed_einsum_bwd)


def _einsum_spec(dimension_numbers: Any, lhs_ndim: int, rhs_ndim: int) -> str:
    """The einsum of a ``dot_general``'s dimension numbers (output: batch, lhs free, rhs free).

    Example:
        >>> _einsum_spec((((2,), (0,)), ((), ())), 3, 2)
        'bca,ad->bcd'
    """
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    lhs, rhs = [""] * lhs_ndim, [""] * rhs_ndim
    for i, j in [*zip(lhs_contract, rhs_contract), *zip(lhs_batch, rhs_batch)]:
        lhs[i] = rhs[j] = next(letters)
    lhs = [c or next(letters) for c in lhs]
    rhs = [c or next(letters) for c in rhs]
    out = [lhs[i] for i in lhs_batch]
    out += [c for i, c in enumerate(lhs) if i not in lhs_batch and i not in lhs_contract]
    out += [c for j, c in enumerate(rhs) if j not in rhs_batch and j not in rhs_contract]
    return f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"


def _mixed_dot_general(
    lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, precision: Any = None, **_: Any
) -> jax.Array:
    """``dot_general`` for ``nn.Dense``: float32 operands as :data:`_F32_DOT`, narrower ones
    through :func:`mixed_einsum` (their backward matmuls stay in the narrow dtype)."""
    if lhs.dtype == jnp.float32 and rhs.dtype == jnp.float32:
        return _F32_DOT(lhs, rhs, dimension_numbers, precision=precision)
    return mixed_einsum(_einsum_spec(dimension_numbers, lhs.ndim, rhs.ndim), lhs, rhs)


def _attention_einsum(spec: str, lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    if lhs.dtype == jnp.float32 and rhs.dtype == jnp.float32:
        return jnp.einsum(spec, lhs, rhs, preferred_element_type=jnp.float32)
    return mixed_einsum(spec, lhs, rhs)


def _dense(features: int, cfg: BertConfig, dtype: Any, param_dtype: Any, name: str) -> nn.Dense:
    init = nn.initializers.normal(stddev=0.02)
    return nn.Dense(
        features,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=init,
        dot_general=_mixed_dot_general,
        name=name,
    )


def _layer_norm(cfg: BertConfig, param_dtype: Any, name: str) -> nn.LayerNorm:
    # The residual stream stays float32 whatever the matmul dtype.
    return nn.LayerNorm(
        epsilon=cfg.layer_norm_eps, dtype=jnp.float32, param_dtype=param_dtype, name=name
    )


class BertEmbeddings(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, input_ids, token_type_ids, deterministic: bool):
        cfg = self.config
        init = nn.initializers.normal(stddev=0.02)

        def embed(n: int, name: str) -> nn.Embed:
            return nn.Embed(
                n,
                cfg.hidden_size,
                dtype=None,  # the table's own dtype: a lookup, never a cast of the whole table
                param_dtype=self.param_dtype,
                embedding_init=init,
                name=name,
            )

        seq = input_ids.shape[-1]
        if seq > cfg.max_sequence_length:
            raise ValueError(
                f"sequence length {seq} > {cfg.max_sequence_length}, the longest the "
                f"{cfg.max_position_embeddings} position embeddings cover"
            )
        # Look up in the storage dtype (no cast of the whole table), sum in float32.
        x = embed(cfg.vocab_size, "word_embeddings")(input_ids).astype(jnp.float32)  # [b, s, h]
        position_table = embed(cfg.max_position_embeddings, "position_embeddings")
        if cfg.positions_after_padding:
            # RoBERTa/MPNet: the i-th non-pad token sits at pad_token_id + i; pads at pad_token_id.
            not_pad = (input_ids != cfg.pad_token_id).astype(jnp.int32)
            position_ids = jnp.cumsum(not_pad, axis=-1) * not_pad + cfg.pad_token_id
            x = x + position_table(position_ids).astype(jnp.float32)
        else:
            x = x + position_table(jnp.arange(seq))[None].astype(jnp.float32)
        if cfg.type_vocab_size:
            x = x + embed(cfg.type_vocab_size, "token_type_embeddings")(token_type_ids).astype(
                jnp.float32
            )
        x = _layer_norm(cfg, self.param_dtype, "LayerNorm")(x)
        return nn.Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)


class BertSelfAttention(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, deterministic: bool, position_bias=None):
        cfg = self.config
        b, s, _ = x.shape
        nh, hd = cfg.num_attention_heads, cfg.head_dim

        def proj(name: str):
            y = _dense(cfg.hidden_size, cfg, self.dtype, self.param_dtype, name)(x)
            return y.reshape(b, s, nh, hd)  # [b, s, heads, head_dim]

        q, k, v = proj("query"), proj("key"), proj("value")
        q = (q * hd**-0.5).astype(self.dtype)
        scores = _attention_einsum("bqhd,bkhd->bhqk", q, k.astype(self.dtype))
        if position_bias is not None:  # [1, heads, q, k] float32 relative position bias
            scores = scores + position_bias
        scores = scores + bias  # bias [b, 1, 1, k]: 0 on tokens, large negative on padding
        probs = jax.nn.softmax(scores, axis=-1)
        probs = nn.Dropout(cfg.attention_probs_dropout_prob)(probs, deterministic=deterministic)
        out = _attention_einsum("bhqk,bkhd->bqhd", probs.astype(self.dtype), v.astype(self.dtype))
        return out.reshape(b, s, cfg.hidden_size)


class BertAttention(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, deterministic: bool, position_bias=None):
        cfg = self.config
        h = BertSelfAttention(cfg, self.dtype, self.param_dtype, name="self")(
            x, bias, deterministic, position_bias
        )
        return BertSelfOutput(cfg, self.dtype, self.param_dtype, name="output")(h, x, deterministic)


class BertSelfOutput(nn.Module):
    """dense -> dropout -> LayerNorm(residual + .): the post-LN block shared by both sublayers."""

    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, residual, deterministic: bool):
        cfg = self.config
        h = _dense(cfg.hidden_size, cfg, self.dtype, self.param_dtype, "dense")(h)
        h = nn.Dropout(cfg.hidden_dropout_prob)(h, deterministic=deterministic)
        return _layer_norm(cfg, self.param_dtype, "LayerNorm")(h + residual)


class BertIntermediate(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        h = _dense(cfg.intermediate_size, cfg, self.dtype, self.param_dtype, "dense")(x)
        return _ACTIVATIONS[cfg.hidden_act](h)


class BertLayer(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, deterministic: bool, position_bias=None):
        cfg = self.config
        x = BertAttention(cfg, self.dtype, self.param_dtype, name="attention")(
            x, bias, deterministic, position_bias
        )
        h = BertIntermediate(cfg, self.dtype, self.param_dtype, name="intermediate")(x)
        return BertSelfOutput(cfg, self.dtype, self.param_dtype, name="output")(h, x, deterministic)


class BertEncoder(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias, deterministic: bool):
        cfg = self.config
        position_bias = None
        if cfg.relative_attention_num_buckets:
            table = nn.Embed(
                cfg.relative_attention_num_buckets,
                cfg.num_attention_heads,
                dtype=None,
                param_dtype=self.param_dtype,
                embedding_init=nn.initializers.normal(stddev=0.02),
                name="relative_attention_bias",
            )
            # The buckets depend only on the (static) length: a constant of the compiled function.
            buckets = relative_position_buckets(
                x.shape[1], cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
            )
            values = table(jnp.asarray(buckets)).astype(jnp.float32)  # [q, k, heads]
            position_bias = jnp.transpose(values, (2, 0, 1))[None]  # [1, heads, q, k]
        for i in range(cfg.num_hidden_layers):
            x = BertLayer(cfg, self.dtype, self.param_dtype, name=f"layer_{i}")(
                x, bias, deterministic, position_bias
            )
        return x


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """``[length, length]`` int32 bucket of each (query, key) offset, as transformers'
    ``MPNetEncoder.relative_position_bucket`` (T5's bidirectional buckets): half the buckets per
    direction, exact below a quarter of ``num_buckets``, log-spaced up to ``max_distance``. Computed
    in float32 with the same operations, so the truncation lands where torch's does.

    Example:
        >>> relative_position_buckets(4, 32, 128)[0].tolist()  # query 0 against keys 0..3
        [0, 17, 18, 19]
    """
    query = np.arange(length, dtype=np.int64)[:, None]
    key = np.arange(length, dtype=np.int64)[None, :]
    n = query - key  # transformers: n = -(memory_position - context_position)
    half = num_buckets // 2
    out = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    scaled = np.log(np.maximum(n, 1).astype(np.float32) / np.float32(max_exact))
    scaled = scaled / np.float32(math.log(max_distance / max_exact))
    large = max_exact + (scaled * np.float32(half - max_exact)).astype(np.int64)
    large = np.minimum(large, half - 1)
    return (out + np.where(n < max_exact, n, large)).astype(np.int32)


class BertModel(nn.Module):
    """The encoder: ``(input_ids, attention_mask) -> (hidden [b, s, h], pooled [b, h] | None)``.

    ``pooled`` is HF's pooler output (tanh(dense(hidden[:, 0]))), present with ``add_pooler``.

    Example:
        >>> cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
        ...                  num_attention_heads=2, intermediate_size=32)
        >>> ids = jnp.ones((2, 5), jnp.int32)
        >>> params = jax.jit(BertModel(cfg).init)(jax.random.key(0), ids, jnp.ones_like(ids))["params"]
        >>> jax.jit(BertModel(cfg).apply)({"params": params}, ids, jnp.ones_like(ids))[0].shape
        (2, 5, 16)
    """

    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    add_pooler: bool = True

    @nn.compact
    def __call__(self, input_ids, attention_mask, token_type_ids=None, deterministic: bool = True):
        cfg = self.config
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        x = BertEmbeddings(cfg, self.dtype, self.param_dtype, name="embeddings")(
            input_ids, token_type_ids, deterministic
        )
        # Additive key mask in float32: 0 for tokens, the most negative float for padding (as HF).
        bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
        x = BertEncoder(cfg, self.dtype, self.param_dtype, name="encoder")(x, bias, deterministic)
        pooled = None
        if self.add_pooler:
            pooled = BertPooler(cfg, self.dtype, self.param_dtype, name="pooler")(x)
        return x, pooled


class BertPooler(nn.Module):
    config: BertConfig
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):  # [b, s, h] -> [b, h]: tanh(dense(first token))
        cfg = self.config
        return jnp.tanh(
            _dense(cfg.hidden_size, cfg, self.dtype, self.param_dtype, "dense")(x[:, 0])
        )


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Mean of the token vectors under the mask, in float32 (sentence-transformers' pooling).

    Example:
        >>> mean_pool(jnp.ones((1, 3, 2)), jnp.array([[1, 1, 0]])).tolist()
        [[1.0, 1.0]]
    """
    mask = attention_mask.astype(jnp.float32)[..., None]  # [b, s, 1]
    total = jnp.sum(hidden.astype(jnp.float32) * mask, axis=1)
    return total / jnp.clip(jnp.sum(mask, axis=1), 1e-9)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``x / max(||x||, eps)`` along the last axis (as ``torch.nn.functional.normalize``).

    Example:
        >>> l2_normalize(jnp.array([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    return x / jnp.maximum(norm, eps)


def count_params(params: Any) -> int:
    """Number of scalars in a parameter tree.

    Example:
        >>> count_params({"a": jnp.zeros((2, 3))})
        6
    """
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
