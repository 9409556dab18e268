"""Import a Llama-family model from a GGUF file (llama.cpp's format) into the Flax decoder.

* Tensors are read by a small header parser (:func:`read_gguf`, memory-mapped) and dequantized
  with ``gguf.quants.dequantize``
  (F32, F16, BF16, Q4_0/Q4_1/Q8_0 and the k-quants it implements), to float32.
* llama.cpp's ``convert_hf_to_gguf.py`` permutes the rows of ``attn_q``/``attn_k`` (per head,
  from HF's "two halves" rotary layout to GGML's interleaved pairs:
  ``w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2)``, with ``n_head`` the KV head
  count for ``attn_k``). :func:`unpermute_qk` applies the inverse, so the weights fit the HF
  ``rotate_half`` convention the decoder uses.
* The config comes from the ``<arch>.*`` metadata; ties are detected by the absence of
  ``output.weight``. GGUF tensor names are renamed to HF names and go through the same strict
  :func:`~routellm_jax.models.encoders.llama.params_from_hf_state_dict` as safetensors.
* The tokenizer is rebuilt from the ``tokenizer.ggml.*`` metadata by ``transformers``
  (``AutoTokenizer.from_pretrained(folder, gguf_file=name)``, which works offline), then saved
  as a plain ``tokenizer.json`` folder next to the cache, so the slow rebuild happens once.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf.quants import dequantize

from routellm_jax.models.encoders.llama import LlamaConfig, Params, params_from_hf_state_dict

_SUPPORTED_ARCHS = ("llama",)
_BLOCK = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's permutation of q/k rows (HF half-split rotary -> GGML interleaved pairs).

    ``n_head`` is the number of heads the rows belong to (KV heads for ``attn_k``). Exposed so
    tests can build GGUF files exactly as ``convert_hf_to_gguf.py`` does.

    Example:
        >>> permute_qk(np.arange(8.0), 1).tolist()
        [0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]
    """
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def unpermute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of :func:`permute_qk`.

    Example:
        >>> unpermute_qk(permute_qk(np.arange(8.0), 1), 1).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    """
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


# GGUF value types (gguf.GGUFValueType): struct format of the scalar ones.
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALAR.update({11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9


@dataclasses.dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: raw bytes (memory-mapped) and numpy-order shape."""

    name: str
    qtype: int  # gguf.GGMLQuantizationType value
    shape: tuple[int, ...]  # numpy order (outermost first), e.g. [out, in] for a weight
    data: np.ndarray  # uint8 [rows, bytes_per_row], a view into the memory map

    def dequantize(self) -> np.ndarray:
        """Float32 values of ``shape`` (``gguf.quants.dequantize``)."""

        arr = dequantize(self.data, gguf.GGMLQuantizationType(self.qtype))
        return np.asarray(arr, dtype=np.float32).reshape(self.shape)


def read_gguf(
    path: str | os.PathLike[str], *, skip_arrays_longer_than: int = 1024
) -> tuple[dict[str, Any], dict[str, GGUFTensor]]:
    """Parse a GGUF (v2/v3) header: ``(metadata, tensors by name)``.

    A small parser of the documented format instead of ``gguf.GGUFReader``, which builds a Python
    object for every entry of SmolLM2's 49k-token vocabulary (slow, and the vocabulary is not
    needed here); tensor bytes stay memory-mapped. Arrays longer than ``skip_arrays_longer_than``
    (the vocabulary, merges) are left out of the metadata. Errors name the file and byte offset.

    Example (a tiny file written with the ``gguf`` package; SmolLM2's Q4_1 file reads the same way):
        >>> import gguf, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "tiny.gguf"
        >>> writer = gguf.GGUFWriter(str(path), "llama")
        >>> writer.add_block_count(2); writer.add_embedding_length(64); writer.add_head_count(4)
        >>> writer.add_chat_template("{% for message in messages %}{{ message.content }}{% endfor %}")
        >>> writer.add_tensor("output_norm.weight", np.ones(64, np.float32))
        >>> writer.write_header_to_file(); writer.write_kv_data_to_file()
        >>> writer.write_tensors_to_file(); writer.close()
        >>> meta, tensors = read_gguf(path)
        >>> meta["general.architecture"], meta["llama.block_count"], tensors["output_norm.weight"].shape
        ('llama', 2, (64,))
        >>> gguf_chat_template(path)[:19]
        '{% for message in m'
        >>> tmp.cleanup()
    """

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    raw = memoryview(buf)
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(raw):
            raise ValueError(f"{path}: truncated GGUF header at byte {pos}")
        (value,) = struct.unpack_from(fmt, raw, pos)
        pos += size
        return value

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        if pos + n > len(raw):
            raise ValueError(f"{path}: truncated string at byte {pos}")
        value = bytes(raw[pos : pos + n]).decode("utf-8", errors="replace")
        pos += n
        return value

    def value(vtype: int) -> Any:
        nonlocal pos
        if vtype in _SCALAR:
            return take(_SCALAR[vtype])
        if vtype == _STRING:
            return string()
        if vtype == _ARRAY:
            itype, count = take("<I"), take("<Q")
            if count > skip_arrays_longer_than:
                if itype in _SCALAR:
                    pos += count * struct.calcsize(_SCALAR[itype])
                else:
                    for _ in range(count):
                        value(itype)
                return _SKIPPED
            return [value(itype) for _ in range(count)]
        raise ValueError(f"{path}: unknown GGUF value type {vtype} at byte {pos}")

    if bytes(raw[:4]) != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file (magic {bytes(raw[:4])!r})")
    pos = 4
    version = take("<I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_kv = take("<Q"), take("<Q")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = string()
        v = value(take("<I"))
        if v is not _SKIPPED:
            meta[key] = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, dims, take("<I"), take("<Q")))
    align = int(meta.get("general.alignment", 32))
    start = -(-pos // align) * align
    tensors: dict[str, GGUFTensor] = {}
    for name, dims, qtype, offset in infos:
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(qtype)]
        except (ValueError, KeyError):
            raise ValueError(f"{path}: tensor {name!r} has unknown type {qtype}") from None
        shape = tuple(int(d) for d in reversed(dims))  # GGUF lists the innermost dim first
        row_bytes = shape[-1] // block * type_size
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        begin = start + offset
        if shape[-1] % block or begin + rows * row_bytes > len(buf):
            raise ValueError(f"{path}: tensor {name!r} (shape {shape}) runs past the file end")
        data = buf[begin : begin + rows * row_bytes].reshape(rows, row_bytes)
        tensors[name] = GGUFTensor(name, qtype, shape, data)
    return meta, tensors


_SKIPPED = object()


def gguf_metadata(path: str | os.PathLike[str], *, skip_arrays_longer_than: int = 1024) -> dict:
    """The GGUF key/value metadata as Python values (long arrays such as the vocab are skipped)."""
    return read_gguf(path, skip_arrays_longer_than=skip_arrays_longer_than)[0]


def llama_config_from_gguf(
    meta: dict, tensor_names: set[str], *, source: str = "<gguf>", vocab_rows: int | None = None
) -> LlamaConfig:
    """Build a :class:`LlamaConfig` from GGUF metadata (``<arch>.*`` and ``tokenizer.ggml.*``).

    Example:
        >>> meta = {"general.architecture": "llama", "llama.vocab_size": 128, "llama.block_count": 2,
        ...         "llama.embedding_length": 64, "llama.feed_forward_length": 128,
        ...         "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2}
        >>> cfg = llama_config_from_gguf(meta, {"token_embd.weight"})  # no output.weight: tied
        >>> cfg.num_key_value_heads, cfg.head_dim, cfg.tie_word_embeddings
        (2, 16, True)
    """
    arch = meta.get("general.architecture")
    if arch not in _SUPPORTED_ARCHS:
        raise ValueError(
            f"{source}: general.architecture={arch!r}; supported: {list(_SUPPORTED_ARCHS)}"
        )

    def get(key: str, default: Any = KeyError) -> Any:
        full = f"{arch}.{key}"
        if full in meta:
            return meta[full]
        if default is KeyError:
            raise KeyError(f"{source}: missing GGUF metadata key {full!r}")
        return default

    scaling = get("rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in tensor_names:
        raise ValueError(
            f"{source}: rope scaling ({arch}.rope.scaling.type={scaling!r} or a rope_freqs "
            "tensor) is not supported; only the default rotary embedding is implemented"
        )
    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", hidden // heads))
    rope_dim = int(get("rope.dimension_count", head_dim))
    if rope_dim != head_dim:
        raise ValueError(
            f"{source}: {arch}.rope.dimension_count={rope_dim} != head dim {head_dim}; partial "
            "rotary embeddings are not supported"
        )
    vocab = get("vocab_size", None)
    if vocab is None:
        vocab = vocab_rows
    if vocab is None:
        raise KeyError(f"{source}: no {arch}.vocab_size and no token_embd.weight to infer it")

    def token_id(name: str) -> int | None:
        value = meta.get(f"tokenizer.ggml.{name}")
        return None if value is None else int(value)

    return LlamaConfig(
        vocab_size=int(vocab),
        hidden_size=hidden,
        intermediate_size=int(get("feed_forward_length")),
        num_hidden_layers=int(get("block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(get("attention.head_count_kv", heads)),
        head_dim_=head_dim if head_dim != hidden // heads else None,
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(get("rope.freq_base", 10000.0)),
        max_position_embeddings=int(get("context_length", 2048)),
        tie_word_embeddings="output.weight" not in tensor_names,
        attention_bias="blk.0.attn_q.bias" in tensor_names,
        mlp_bias="blk.0.ffn_up.bias" in tensor_names,
        bos_token_id=token_id("bos_token_id"),
        eos_token_id=token_id("eos_token_id"),
        pad_token_id=token_id("padding_token_id"),
    )


def load_gguf(path: str | os.PathLike[str]) -> tuple[LlamaConfig, Params]:
    """Read a Llama GGUF: config from metadata, float32 params (dequantized, q/k un-permuted)."""
    path = Path(path)
    meta, by_name = read_gguf(path)
    embd = by_name.get("token_embd.weight")
    vocab_rows = embd.shape[0] if embd is not None else None
    config = llama_config_from_gguf(meta, set(by_name), source=str(path), vocab_rows=vocab_rows)

    state: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for name, tensor in by_name.items():
        m = _BLOCK.match(name)
        if m and m.group(2) in _BLOCK_NAMES:
            hf = f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
        elif name in _TOP_NAMES:
            hf = _TOP_NAMES[name]
        else:
            raise KeyError(f"{path}: unexpected GGUF tensor {name!r}")
        try:
            arr = tensor.dequantize()
        except NotImplementedError as err:
            raise ValueError(f"{path}: tensor {name!r}: {err}") from err
        if m and m.group(2) == "attn_q":
            arr = unpermute_qk(arr, config.num_attention_heads)
        elif m and m.group(2) == "attn_k":
            arr = unpermute_qk(arr, config.num_key_value_heads)
        state[hf] = arr
        sources[hf] = f"{path} (GGUF tensor {name!r})"
    return config, params_from_hf_state_dict(state, config, sources=sources)


def gguf_chat_template(path: str | os.PathLike[str]) -> str | None:
    """The ``tokenizer.chat_template`` metadata (a Jinja template), or None.

    Example: see :func:`read_gguf`.
    """
    return gguf_metadata(path).get("tokenizer.chat_template")


def load_gguf_tokenizer(
    path: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None
) -> Any:
    """A ``transformers`` fast tokenizer rebuilt from the GGUF's tokenizer metadata.

    With ``cache`` (a folder), the tokenizer is saved there on first use and loaded from there
    afterwards; the caller keys the folder by the GGUF's hash so it cannot go stale.
    """
    from transformers import AutoTokenizer  # local: transformers loads slowly

    path = Path(path)
    if cache is not None:
        cache = Path(cache)
        if (cache / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(cache))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:  # transformers raises many types for unsupported tokenizers
        raise ValueError(f"{path}: cannot build a tokenizer from its metadata ({err})") from err
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=cache.name + ".tmp"))
        try:
            tok.save_pretrained(str(tmp))
            if cache.exists():  # a concurrent writer won; keep theirs
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, cache)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return tok
