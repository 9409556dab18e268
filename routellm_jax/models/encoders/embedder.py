"""Batched sentence embeddings from a BERT-family encoder (all-MiniLM-L6-v2 by default, or
all-mpnet-base-v2).

What ``sentence-transformers`` computes for these encoders (token vectors, mean pooling under the
attention mask, L2 normalisation, truncation at the folder's ``max_seq_length``), made fast on CPU
and accelerators:

* prompts are tokenized in one call to the Rust ``tokenizers`` fast tokenizer, without padding;
* they are sorted by length and cut into chunks of similar length by the bucketed executor
  (:mod:`routellm_jax.models.executor`: fine length buckets, power-of-two rows, each shape
  compiled once, ahead of time), so a 20-token prompt is not padded to 256 and a warm embedder
  never recompiles (``Embedder.compile_count`` counts the executables);
* ``dtype="bfloat16"`` feeds the matmuls bf16 operands (parameters stored in bf16) with float32
  accumulation; the residual stream, LayerNorm, softmax and pooling stay in float32.

:func:`encode` is the pure jittable function underneath, so a router can run encoder and head in
one ``jit``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from routellm_jax.models.encoders.bert import BertConfig, BertModel, l2_normalize, mean_pool
from routellm_jax.models.encoders.fetch import fetch_encoder
from routellm_jax.models.encoders.hf_import import load_bert
from routellm_jax.models.executor import (
    LENGTH_BUCKETS,
    BucketedExecutor,
    Chunk,
    backend_limits,
    bucket_grid,
)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def encode(
    params: Any,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    config: BertConfig,
    *,
    dtype: Any = jnp.float32,
    normalize: bool = True,
) -> jax.Array:
    """Pure encoder forward: ``[batch, seq]`` token ids + mask -> ``[batch, hidden]`` float32
    mean-pooled (and by default L2-normalised) embeddings. ``params`` has no pooler.

    Example:
        >>> cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        ...                  intermediate_size=64, max_position_embeddings=16)
        >>> from routellm_jax.models.encoders.hf_import import bert_template
        >>> rng = np.random.default_rng(0)  # random weights in the shapes of a pooler-less BERT
        >>> params = jax.tree.map(lambda s: rng.normal(0.0, 0.02, s.shape).astype(s.dtype),
        ...                       bert_template(cfg, add_pooler=False))
        >>> ids, mask = np.array([[1, 7, 9, 2]], np.int32), np.ones((1, 4), np.int32)
        >>> out = encode(params, ids, mask, cfg)
        >>> out.shape, round(float(jnp.linalg.norm(out)), 4)
        ((1, 32), 1.0)
    """
    model = BertModel(config, dtype=dtype, add_pooler=False)
    hidden, _ = model.apply({"params": params}, input_ids, attention_mask)  # [b, s, h]
    pooled = mean_pool(hidden, attention_mask)
    return l2_normalize(pooled) if normalize else pooled


class BatchTokenizer:
    """The fast tokenizer of an encoder folder, with our own truncation and padding.

    ``encode_ids(prompts)`` returns unpadded id arrays (truncated to ``max_length``), so callers
    can bucket by length; calling it with a length pads/truncates to ``[n, length]``.

    Example (a four-word tokenizer; encoders load theirs with :meth:`from_folder`):
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> words = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3},
        ...                                    unk_token="[UNK]"))
        >>> words.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> tok = BatchTokenizer(words, max_length=3)
        >>> [ids.tolist() for ids in tok.encode_ids(["hello world", "hello big wide world"])]
        [[2, 3], [2, 1, 1]]
        >>> ids, mask = tok(["hello world"], 4)
        >>> ids.tolist(), mask.tolist()
        ([[2, 3, 0, 0]], [[1, 1, 0, 0]])
    """

    def __init__(self, tokenizer: Any, max_length: int, pad_id: int = 0) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        # The file's own settings (fixed padding to 128, truncation at 128) are not what we want.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], max_length: int, pad_id: int = 0
    ) -> BatchTokenizer:

        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json in the encoder folder")
        return cls(Tokenizer.from_file(str(path)), max_length, pad_id)

    def encode_ids(self, prompts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each prompt (the tokenizer's special tokens, e.g. [CLS] ... [SEP] or
        <s> ... </s>, included; truncated), unpadded."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        encodings = self.tokenizer.encode_batch(list(prompts))
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]

    def pad(self, ids: Sequence[np.ndarray], length: int, rows: int | None = None):
        """Stack into ``(input_ids [rows, length] int32, attention_mask [rows, length] int32)``;
        extra rows (``rows > len(ids)``) are all padding."""
        rows = len(ids) if rows is None else rows
        out = np.full((rows, length), self.pad_id, dtype=np.int32)
        mask = np.zeros((rows, length), dtype=np.int32)
        for i, seq in enumerate(ids):
            n = min(len(seq), length)
            out[i, :n] = seq[:n]
            mask[i, :n] = 1
        return out, mask

    def __call__(self, prompts: Sequence[str], length: int | None = None):
        """Tokenize and pad to ``length`` (default ``max_length``)."""
        return self.pad(self.encode_ids(prompts), length or self.max_length)


@dataclasses.dataclass
class Embedder:
    """A loaded encoder that turns prompts into ``[n, dim]`` float32 unit vectors.

    Made by :func:`load_embedder`; tests/models/test_embedder.py runs it on the real encoder.
    """

    name: str
    config: BertConfig
    params: Any
    tokenizer: BatchTokenizer
    dtype: str = "float32"
    buckets: tuple[int, ...] = LENGTH_BUCKETS
    folder: Path | None = None
    _executor: BucketedExecutor = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        max_tokens, dispatch_tokens = backend_limits()
        self._executor = BucketedExecutor(
            partial(encode, config=self.config, dtype=_DTYPES[self.dtype]),
            length_buckets=self.buckets,
            max_tokens=max_tokens,
            dispatch_tokens=dispatch_tokens,
        )

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def compile_count(self) -> int:
        """Number of compiled (rows, length) executables; constant once warm."""
        return self._executor.compile_count

    def warmup(self, batch_sizes: Sequence[int] = (64,), lengths: Sequence[int] | None = None):
        """Compile the shapes a workload will use ahead of time (returns ``self``)."""
        for rows in batch_sizes:
            for length in lengths or self.buckets:
                ids, mask = self.tokenizer.pad([], length, rows)
                self._executor.executable(
                    (self.params,), (ids, mask), f"input_ids[{rows}, {length}]"
                )
        return self

    def embed_ids(self, ids: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Embed already-tokenized prompts (unpadded id arrays) -> ``[n, dim]`` float32, in
        length-sorted chunks of at most ``batch_size`` rows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

        def build(chunk: Chunk) -> tuple[tuple, str]:
            args = self.tokenizer.pad([ids[i] for i in chunk.index], chunk.length, chunk.rows)
            return args, f"input_ids[{chunk.rows}, {chunk.length}]"

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        lengths = [len(s) for s in ids]
        return self._executor.run(lengths, build, (self.params,), out, max_rows=batch_size)

    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed prompts -> ``[len(prompts), dim]`` float32, mean-pooled and L2-normalised."""
        if len(prompts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_ids(self.tokenizer.encode_ids(prompts), batch_size)


def sentence_max_length(folder: str | os.PathLike[str], default: int = 256) -> int:
    """The token budget sentence-transformers gives an encoder: ``max_seq_length`` of the folder's
    ``sentence_bert_config.json`` (``default`` without that file).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "sentence_bert_config.json").write_text('{"max_seq_length": 384}')
        ...     sentence_max_length(tmp), sentence_max_length(Path(tmp) / "none")
        (384, 256)
    """
    path = Path(folder) / "sentence_bert_config.json"
    if not path.is_file():
        return default
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["max_seq_length"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: no readable max_seq_length ({err!r})") from None
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: max_seq_length must be a positive int, got {value!r}")
    return value


def load_embedder(
    name: str = "all-MiniLM-L6-v2",
    dtype: str = "float32",
    max_length: int | None = None,
    *,
    buckets: Sequence[int] = LENGTH_BUCKETS,
    folder: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Embedder:
    """Fetch (if needed, hash-verified) and load an encoder as an :class:`Embedder`.

    ``folder`` loads a local HF checkpoint folder instead of a fetched one. ``max_length``
    (tokens, special tokens included) defaults to the encoder's own ``max_seq_length``
    (all-MiniLM-L6-v2: 256, all-mpnet-base-v2: 384), as sentence-transformers truncates.
    """

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if folder is None:
        folder = fetch_encoder(name, cache_dir)
    folder = Path(folder)
    config, params = load_bert(folder, add_pooler=False, param_dtype=_DTYPES[dtype])
    if max_length is None:
        max_length = sentence_max_length(folder)
    max_length = min(int(max_length), config.max_sequence_length)
    cut = bucket_grid(buckets, max_length)
    tokenizer = BatchTokenizer.from_folder(folder, max_length, pad_id=config.pad_token_id)
    return Embedder(name, config, params, tokenizer, dtype, cut, folder)
