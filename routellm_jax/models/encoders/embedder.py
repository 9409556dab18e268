"""Batched sentence embeddings from a BERT-family encoder (all-MiniLM-L6-v2 by default).

What ``sentence-transformers`` computes for all-MiniLM-L6-v2 (token vectors, mean pooling under the
attention mask, L2 normalisation), made fast on CPU and accelerators:

* prompts are tokenized in one call to the Rust ``tokenizers`` fast tokenizer, without padding;
* they are sorted by length and grouped into a few **length buckets** (16, 32, 64, 128, 256
  tokens), so a 20-token prompt is not padded to 256;
* each (batch size, bucket) shape is compiled once, ahead of time, and kept: a warm embedder never
  recompiles (``Embedder.compile_count`` counts the executables); the batch dimension is padded up
  to a power of two (at most ``batch_size``), so the set of shapes stays small;
* ``dtype="bfloat16"`` feeds the matmuls bf16 operands (parameters stored in bf16) with float32
  accumulation; the residual stream, LayerNorm, softmax and pooling stay in float32.

:func:`encode` is the pure jittable function underneath, so a router can run encoder and head in
one ``jit``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.models.encoders.bert import BertConfig, BertModel, l2_normalize, mean_pool

DEFAULT_BUCKETS = (16, 32, 64, 128, 256)
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
        >>> emb = load_embedder()  # doctest: +SKIP
        >>> ids, mask = emb.tokenizer(["hello"], 16)  # doctest: +SKIP
        >>> encode(emb.params, ids, mask, emb.config).shape  # doctest: +SKIP
        (1, 384)
    """
    model = BertModel(config, dtype=dtype, add_pooler=False)
    hidden, _ = model.apply({"params": params}, input_ids, attention_mask)  # [b, s, h]
    pooled = mean_pool(hidden, attention_mask)
    return l2_normalize(pooled) if normalize else pooled


class BatchTokenizer:
    """The fast tokenizer of an encoder folder, with our own truncation and padding.

    ``encode_ids(prompts)`` returns unpadded id arrays (truncated to ``max_length``), so callers
    can bucket by length; calling it with a length pads/truncates to ``[n, length]``.

    Example:
        >>> tok = BatchTokenizer.from_folder(fetch_encoder(), 256)  # doctest: +SKIP
        >>> ids, mask = tok(["hello world"], 8)  # doctest: +SKIP
        >>> ids.shape, int(mask.sum())  # doctest: +SKIP
        ((1, 8), 4)
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
        from tokenizers import Tokenizer

        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json in the encoder folder")
        return cls(Tokenizer.from_file(str(path)), max_length, pad_id)

    def encode_ids(self, prompts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each prompt ([CLS] ... [SEP], truncated), unpadded."""
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


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """Smallest bucket that holds ``length`` tokens (the largest bucket if none does).

    Example:
        >>> bucket_for(20, (16, 32, 64))
        32
    """
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]


def _pow2_at_most(n: int, cap: int) -> int:
    """Smallest power of two >= n, capped at ``cap`` (a batch padded to it)."""
    p = 1
    while p < n:
        p *= 2
    return min(p, cap)


def plan_batches(
    lengths: Sequence[int], batch_size: int, buckets: Sequence[int]
) -> list[tuple[np.ndarray, int, int]]:
    """Group prompt indices into ``(indices, padded_rows, bucket_length)`` batches: sorted by
    length, each batch inside one bucket, rows padded to a power of two <= ``batch_size``.

    Example:
        >>> [(i.tolist(), r, b) for i, r, b in plan_batches([5, 40, 7], 2, (16, 64))]
        [([0, 2], 2, 16), ([1], 1, 64)]
    """
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    which = np.array([bucket_for(int(n), buckets) for n in lengths[order]], dtype=np.int64)
    plan = []
    for b in buckets:
        idx = order[which == b]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            plan.append((chunk, _pow2_at_most(len(chunk), batch_size), b))
    return plan


# Length grid for :func:`plan_chunks`: steps of 8 tokens up to 64 (where GSM8K/MT-Bench prompts
# sit, 60-70 tokens on average), coarser above, so padding stays under ~15% of a prompt while the
# number of compiled shapes stays bounded.
FINE_LENGTHS: tuple[int, ...] = (
    8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 448, 512,
)  # fmt: skip
ROW_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def plan_chunks(
    lengths: Sequence[int],
    *,
    length_buckets: Sequence[int] = FINE_LENGTHS,
    row_buckets: Sequence[int] = ROW_BUCKETS,
    max_tokens: int | None = 1024,
    dispatch_tokens: float = 32.0,
) -> list[tuple[np.ndarray, int, int]]:
    """Cut prompts into ``(indices, padded_rows, bucket_length)`` chunks of similar length.

    Prompts are sorted by length; the sorted list is cut into contiguous chunks by dynamic
    programming, minimising the estimated work ``sum(dispatch_tokens + rows * length * (1 +
    length / 2048))`` (padded rows and length, the second term the attention's share), subject to
    ``rows * length <= max_tokens`` (a single row is always allowed). ``dispatch_tokens`` is the
    fixed cost of one call in token-equivalents (streaming the weights, launching), so the plan
    only splits a batch when padding would waste more than a call costs. ``max_tokens`` bounds a
    chunk where bigger chunks get *slower* per token: on CPU, past ~1024 tokens the [tokens, 1536]
    activations leave the cache (measured: 16x64 tokens ~2800 tok/s, 64x64 ~2100, 256x64 ~1600).

    Example:
        >>> [(i.tolist(), r, b) for i, r, b in plan_chunks([5, 60, 7, 58], max_tokens=None)]
        [([0, 2], 2, 8), ([3, 1], 2, 64)]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    buckets = np.asarray(sorted(length_buckets), dtype=np.int64)
    # Bucket of each sorted prompt (the largest bucket when none holds it: callers truncate).
    chunk_len = buckets[np.minimum(np.searchsorted(buckets, sorted_len), len(buckets) - 1)]
    rows_sorted = np.asarray(sorted(row_buckets), dtype=np.int64)
    max_rows = int(rows_sorted[-1])
    # rowpad[k]: the row bucket a chunk of k prompts is padded to.
    rowpad = rows_sorted[np.searchsorted(rows_sorted, np.arange(max_rows + 1))[: max_rows + 1]]
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        length = int(chunk_len[i - 1])  # sorted ascending: the chunk's longest is its last
        k_max = min(i, max_rows)
        if max_tokens is not None:
            fits = rows_sorted[rows_sorted * length <= max_tokens]
            k_max = min(k_max, int(fits[-1]) if fits.size else 1)
        ks = np.arange(1, k_max + 1)
        cost = best[i - ks] + dispatch_tokens + rowpad[ks] * length * (1.0 + length / 2048.0)
        j = int(np.argmin(cost))
        best[i], cut[i] = cost[j], ks[j]
    plan = []
    i = n
    while i > 0:
        k = int(cut[i])
        plan.append((order[i - k : i], int(rowpad[k]), int(chunk_len[i - 1])))
        i -= k
    return plan[::-1]


@dataclasses.dataclass
class Embedder:
    """A loaded encoder that turns prompts into ``[n, dim]`` float32 unit vectors.

    Example:
        >>> emb = load_embedder("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> emb.embed(["What is 2 + 2?"]).shape  # doctest: +SKIP
        (1, 384)
    """

    name: str
    config: BertConfig
    params: Any
    tokenizer: BatchTokenizer
    dtype: str = "float32"
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    folder: Path | None = None
    _compiled: dict[tuple[int, int], Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def compile_count(self) -> int:
        """Number of compiled (batch, length) executables; constant once warm."""
        return len(self._compiled)

    def _executable(self, rows: int, length: int):
        key = (rows, length)
        fn = self._compiled.get(key)
        if fn is None:
            jitted = jax.jit(partial(encode, config=self.config, dtype=_DTYPES[self.dtype]))
            spec = jax.ShapeDtypeStruct((rows, length), jnp.int32)
            fn = jitted.lower(self.params, spec, spec).compile()
            self._compiled[key] = fn
        return fn

    def warmup(self, batch_sizes: Sequence[int] = (64,), lengths: Sequence[int] | None = None):
        """Compile the shapes a workload will use ahead of time (returns ``self``).

        Example:
            >>> emb.warmup(batch_sizes=(1, 64))  # doctest: +SKIP
        """
        for rows in batch_sizes:
            for length in lengths or self.buckets:
                self._executable(rows, length)
        return self

    def embed_ids(self, ids: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Embed already-tokenized prompts (unpadded id arrays) -> ``[n, dim]`` float32."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        pending = []
        for index, rows, length in plan_batches([len(s) for s in ids], batch_size, self.buckets):
            input_ids, mask = self.tokenizer.pad([ids[i] for i in index], length, rows)
            # Dispatch is asynchronous: padding the next batch overlaps this one's compute.
            pending.append((index, self._executable(rows, length)(self.params, input_ids, mask)))
        for index, result in pending:
            out[index] = np.asarray(result)[: len(index)]
        return out

    def embed(self, prompts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed prompts -> ``[len(prompts), dim]`` float32, mean-pooled and L2-normalised.

        Example:
            >>> load_embedder().embed(["hi", "hello"]).shape  # doctest: +SKIP
            (2, 384)
        """
        if len(prompts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_ids(self.tokenizer.encode_ids(prompts), batch_size)


def load_embedder(
    name: str = "all-MiniLM-L6-v2",
    dtype: str = "float32",
    max_length: int = 256,
    *,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    folder: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Embedder:
    """Fetch (if needed, hash-verified) and load an encoder as an :class:`Embedder`.

    ``folder`` loads a local HF checkpoint folder instead of a fetched one.

    Example:
        >>> emb = load_embedder("all-MiniLM-L6-v2", dtype="bfloat16")  # doctest: +SKIP
        >>> emb.dim
        384
    """
    from routellm_jax.models.encoders.hf_import import load_bert

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if folder is None:
        from routellm_jax.models.encoders.fetch import fetch_encoder

        folder = fetch_encoder(name, cache_dir)
    folder = Path(folder)
    config, params = load_bert(folder, add_pooler=False, param_dtype=_DTYPES[dtype])
    max_length = min(int(max_length), config.max_position_embeddings)
    cut = tuple(sorted({b for b in buckets if b < max_length} | {max_length}))
    tokenizer = BatchTokenizer.from_folder(folder, max_length, pad_id=config.pad_token_id)
    return Embedder(name, config, params, tokenizer, dtype, cut, folder)
