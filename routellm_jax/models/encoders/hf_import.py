"""Hugging Face checkpoints (safetensors + ``config.json``) -> Flax parameter trees, strictly.

Strict means: every tensor in the files is used (or explicitly ignored by the caller), every
parameter of the Flax model is filled, and every shape is checked; any mismatch is an error that
names the tensor key and the file it came from. No pickle is ever read (safetensors only).

The generic pieces (:func:`read_safetensors`, :func:`read_hf_config`, :func:`assign_strict`, and
``flatten_params``/``unflatten_params`` from :mod:`routellm_jax.models.param_tree`) know nothing
about BERT, so a Llama importer can
reuse them with its own key-renaming function; :func:`load_bert` is the BERT-specific part.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open

from routellm_jax.models.encoders.bert import BertConfig
from routellm_jax.models.param_tree import flatten_params, unflatten_params


class CheckpointError(ValueError):
    """A checkpoint does not match the model: names the key and the file."""


@dataclass(frozen=True)
class Tensor:
    """One tensor read from a checkpoint, with the file it came from (for error messages)."""

    value: np.ndarray
    file: str


def read_hf_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``<folder>/config.json``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "config.json").write_text('{"hidden_size": 384}')
        ...     read_hf_config(tmp)["hidden_size"]
        384
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json in the checkpoint folder")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from err


def safetensors_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The safetensors files of a checkpoint folder: the shards named by
    ``model.safetensors.index.json`` if present, else ``model.safetensors``, else a single
    ``*.safetensors`` file.

    Example: see :func:`read_safetensors`.
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no 'weight_map' object")
        return [folder / name for name in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found
    raise FileNotFoundError(
        f"{folder}: expected model.safetensors (or an index of shards), found {found or 'none'}"
    )


def read_safetensors(files: Iterable[str | os.PathLike[str]]) -> dict[str, Tensor]:
    """Read every tensor of the given safetensors files as numpy arrays (bf16 is widened to
    float32, since numpy has no bfloat16). A key present in two files is an error.

    Example:
        >>> import tempfile
        >>> from safetensors.numpy import save_file
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_file({"dense.weight": np.ones((3, 2), np.float32)}, f"{tmp}/model.safetensors")
        ...     files = safetensors_files(tmp)
        ...     tensors = read_safetensors(files)
        >>> [f.name for f in files], tensors["dense.weight"].value.shape
        (['model.safetensors'], (3, 2))
    """

    out: dict[str, Tensor] = {}
    for file in files:
        file = str(file)
        try:
            handle = safe_open(file, framework="np")
        except Exception as err:  # safetensors raises its own error types for bad headers
            raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from err
        with handle as f:
            for key in f.keys():
                if key in out:
                    raise CheckpointError(f"{file}: tensor {key!r} also in {out[key].file}")
                try:
                    value = f.get_tensor(key)
                except TypeError:  # bfloat16: read raw bits through the flax-free path
                    value = _read_bf16(file, key)
                out[key] = Tensor(value, file)
    return out


def _read_bf16(file: str, key: str) -> np.ndarray:

    with safe_open(file, framework="flax") as f:
        return np.asarray(f.get_tensor(key).astype(jnp.float32))


# A key converter maps an HF tensor key to (flax path, transform of the array), or None for a
# tensor that is consumed without becoming a parameter (a buffer, checked by the converter).
KeyConverter = Callable[[str, np.ndarray], "tuple[str, np.ndarray] | None"]


def assign_strict(
    template: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    convert: KeyConverter,
    *,
    ignore: Iterable[str] = (),
    dtype: Any = jnp.float32,
) -> dict[str, Any]:
    """Fill a Flax parameter template (a tree of arrays or ``ShapeDtypeStruct``) from HF tensors.

    ``convert(key, array)`` renames/transposes one tensor; ``ignore`` holds regexes of HF keys the
    caller knowingly drops (e.g. a task head). Errors name the key and file: a tensor with no
    parameter, a parameter with no tensor, a shape mismatch, a parameter filled twice.

    Example:
        >>> template = {"dense": {"kernel": jax.ShapeDtypeStruct((2, 3), jnp.float32)}}
        >>> tensors = {"dense.weight": Tensor(np.ones((3, 2), np.float32), "model.safetensors")}
        >>> def convert(key, array):  # torch Linear weights are [out, in]; Flax kernels [in, out]
        ...     return "dense/kernel", array.T
        >>> assign_strict(template, tensors, convert)["dense"]["kernel"].shape
        (2, 3)
        >>> assign_strict({"other": template["dense"]}, tensors, convert)
        Traceback (most recent call last):
        ...
        routellm_jax.models.encoders.hf_import.CheckpointError: ...dense.weight...
    """
    want = flatten_params(template)
    ignore_re = [re.compile(p) for p in ignore]
    filled: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key, tensor in tensors.items():
        if any(r.search(key) for r in ignore_re):
            continue
        try:
            converted = convert(key, tensor.value)
        except CheckpointError as err:
            raise CheckpointError(f"{tensor.file}: tensor {key!r}: {err}") from None
        if converted is None:
            continue
        path, value = converted
        if path not in want:
            raise CheckpointError(
                f"{tensor.file}: tensor {key!r} (-> {path}) has no parameter in the model"
            )
        if path in filled:
            raise CheckpointError(
                f"{tensor.file}: tensor {key!r} fills {path}, already filled by {source[path]!r}"
            )
        expected = tuple(want[path].shape)
        if tuple(value.shape) != expected:
            raise CheckpointError(
                f"{tensor.file}: tensor {key!r} has shape {tuple(value.shape)} after conversion, "
                f"the model's {path} has {expected}"
            )
        filled[path] = jnp.asarray(value, dtype=dtype)
        source[path] = key
    missing = sorted(set(want) - set(filled))
    if missing:
        files = sorted({t.file for t in tensors.values()})
        raise CheckpointError(
            f"{', '.join(files)}: no tensor for model parameter(s) {missing[:8]}"
            + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        )
    return unflatten_params(filled)


# --- BERT -------------------------------------------------------------------------------------

_LN_NAMES = {"weight": "scale", "gamma": "scale", "bias": "bias", "beta": "bias"}


def bert_key_converter(key: str, value: np.ndarray) -> tuple[str, np.ndarray] | None:
    """HF ``BertModel`` tensor key -> our Flax path (linear weights transposed to kernels).

    Example:
        >>> bert_key_converter("encoder.layer.0.intermediate.dense.weight", np.zeros((4, 2)))[0]
        'encoder/layer_0/intermediate/dense/kernel'
    """
    if key.startswith("bert."):  # BertFor* checkpoints nest the encoder under "bert."
        key = key[len("bert.") :]
    if key == "embeddings.position_ids" or key == "embeddings.token_type_ids":
        # Buffers of absolute positions / zero token types: consumed, but checked.
        flat = value.reshape(-1)
        expect = np.arange(flat.size) if key.endswith("position_ids") else np.zeros(flat.size)
        if not np.array_equal(flat, expect):
            raise CheckpointError("buffer does not hold the default values this model assumes")
        return None
    parts = re.sub(r"\.layer\.(\d+)\.", r".layer_\1.", key).split(".")
    *parent, leaf = parts
    if not parent:
        raise CheckpointError("not a BERT parameter name")
    if parent[-1] == "LayerNorm":
        if leaf not in _LN_NAMES:
            raise CheckpointError(f"unknown LayerNorm tensor {leaf!r}")
        return "/".join([*parent, _LN_NAMES[leaf]]), value
    if parent[-1].endswith("_embeddings") and leaf == "weight":
        return "/".join([*parent, "embedding"]), value
    if leaf == "weight":
        if value.ndim != 2:
            raise CheckpointError(f"linear weight with {value.ndim} dims")
        return "/".join([*parent, "kernel"]), np.ascontiguousarray(value.T)  # [out,in]->[in,out]
    if leaf == "bias":
        return "/".join([*parent, "bias"]), value
    raise CheckpointError(f"unknown tensor kind {leaf!r}")


# transformers' MPNetModel names -> the BERT names of our tree (same tensors, same shapes).
_MPNET_RENAMES = (
    (re.compile(r"\.attention\.attn\.q\."), ".attention.self.query."),
    (re.compile(r"\.attention\.attn\.k\."), ".attention.self.key."),
    (re.compile(r"\.attention\.attn\.v\."), ".attention.self.value."),
    (re.compile(r"\.attention\.attn\.o\."), ".attention.output.dense."),
    (re.compile(r"\.attention\.LayerNorm\."), ".attention.output.LayerNorm."),
)


def mpnet_key_converter(key: str, value: np.ndarray) -> tuple[str, np.ndarray] | None:
    """HF ``MPNetModel`` tensor key -> our Flax path: the attention block's ``attn.{q,k,v,o}`` and
    ``LayerNorm`` take BERT's names, the shared relative position bias table is an embedding;
    everything else is named as in BERT.

    Example:
        >>> mpnet_key_converter("encoder.layer.3.attention.attn.o.weight", np.zeros((4, 4)))[0]
        'encoder/layer_3/attention/output/dense/kernel'
        >>> mpnet_key_converter("encoder.relative_attention_bias.weight", np.zeros((32, 12)))[0]
        'encoder/relative_attention_bias/embedding'
    """
    if key.startswith("mpnet."):  # MPNetFor* checkpoints nest the encoder under "mpnet."
        key = key[len("mpnet.") :]
    if key == "encoder.relative_attention_bias.weight":
        return "encoder/relative_attention_bias/embedding", value  # [buckets, heads]
    for pattern, name in _MPNET_RENAMES:
        key = pattern.sub(name, key)
    if ".attention.attn." in key:
        raise CheckpointError("unknown MPNet attention tensor")
    return bert_key_converter(key, value)


def bert_template(
    config: BertConfig, *, add_pooler: bool = True, param_dtype: Any = jnp.float32
) -> dict[str, Any]:
    """Shapes of :class:`BertModel`'s parameter tree (``ShapeDtypeStruct`` leaves, nothing
    allocated), written out from the config. Tracing ``BertModel.init`` for them costs a
    noticeable part of a router's start-up; ``tests/models/test_bert.py`` checks this tree
    against the traced one, so the two cannot drift apart.

    Example:
        >>> cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        ...                  intermediate_size=64, max_position_embeddings=16)
        >>> bert_template(cfg)["embeddings"]["word_embeddings"]["embedding"].shape
        (128, 32)
    """
    h, ffn = config.hidden_size, config.intermediate_size

    def leaf(*shape: int) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, param_dtype)

    def dense(n_in: int, n_out: int) -> dict[str, Any]:
        return {"kernel": leaf(n_in, n_out), "bias": leaf(n_out)}

    def layer_norm() -> dict[str, Any]:
        return {"scale": leaf(h), "bias": leaf(h)}

    def encoder_layer() -> dict[str, Any]:
        return {
            "attention": {
                "self": {name: dense(h, h) for name in ("query", "key", "value")},
                "output": {"dense": dense(h, h), "LayerNorm": layer_norm()},
            },
            "intermediate": {"dense": dense(h, ffn)},
            "output": {"dense": dense(ffn, h), "LayerNorm": layer_norm()},
        }

    embeddings: dict[str, Any] = {
        "word_embeddings": {"embedding": leaf(config.vocab_size, h)},
        "position_embeddings": {"embedding": leaf(config.max_position_embeddings, h)},
    }
    if config.type_vocab_size:
        embeddings["token_type_embeddings"] = {"embedding": leaf(config.type_vocab_size, h)}
    embeddings["LayerNorm"] = layer_norm()
    encoder = {f"layer_{i}": encoder_layer() for i in range(config.num_hidden_layers)}
    if config.relative_attention_num_buckets:
        encoder["relative_attention_bias"] = {
            "embedding": leaf(config.relative_attention_num_buckets, config.num_attention_heads)
        }
    tree: dict[str, Any] = {"embeddings": embeddings, "encoder": encoder}
    if add_pooler:
        tree["pooler"] = {"dense": dense(h, h)}
    return tree


def load_bert(
    folder: str | os.PathLike[str],
    *,
    add_pooler: bool = True,
    param_dtype: Any = jnp.float32,
    ignore: Iterable[str] = (),
) -> tuple[BertConfig, dict[str, Any]]:
    """Load an HF BERT or MPNet checkpoint folder (``config.json`` + safetensors) as
    ``(config, params)``; the config's ``model_type`` picks the key mapping.

    With ``add_pooler=False`` the checkpoint's pooler tensors are dropped (the embedder does not
    use them); ``ignore`` adds more key regexes to drop (e.g. ``r"^classifier\\."``).
    """
    folder = Path(folder)
    config = BertConfig.from_hf_dict(read_hf_config(folder), source=str(folder / "config.json"))
    tensors = read_safetensors(safetensors_files(folder))
    ignore = list(ignore)
    if not add_pooler:
        ignore.append(r"^(bert\.|mpnet\.)?pooler\.")
    params = assign_strict(
        bert_template(config, add_pooler=add_pooler, param_dtype=param_dtype),
        tensors,
        mpnet_key_converter if config.model_type == "mpnet" else bert_key_converter,
        ignore=ignore,
        dtype=param_dtype,
    )
    return config, params
