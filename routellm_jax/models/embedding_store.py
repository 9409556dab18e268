"""Frozen-encoder prompt vectors kept on disk: ``<cache>/embeddings/<spec>.npz``, one file per
encoder, shared by training, its data preparation, evaluation and export.

A frozen encoder gives a prompt the same vector in every run, so a machine embeds each prompt once:
the trainer (training prompts, and the near-duplicate pass of a mix that declares this encoder),
the experiment sweep, the exporter (reference prompts, benchmarks) all read and extend the same
file. It holds plain arrays only (read with ``allow_pickle=False``): ``text`` (the prompts' UTF-8
bytes, concatenated), ``offsets`` (``n + 1`` int64 boundaries into ``text``) and ``embeddings``
(float32 ``[n, dim]``); a string array would pad every prompt to the longest one. It is replaced
atomically, merged with what another process added meanwhile, so an interrupted run keeps the
chunks it finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from routellm_jax.models.featurizers import encoder_part
from routellm_jax.paths import cache_dir

log = logging.getLogger(__name__)


def store_path(spec: str) -> Path:
    """Where the vectors of the encoder featurizer ``spec`` are kept.

    Example:
        >>> store_path("all-MiniLM-L6-v2").name
        'all-MiniLM-L6-v2.npz'
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
    return cache_dir() / "embeddings" / f"{safe}.npz"


def read_store(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            text, offsets = z["text"].tobytes(), z["offsets"]
            vectors = np.asarray(z["embeddings"], np.float32)
        if len(offsets) != len(vectors) + 1 or offsets[-1] != len(text):
            raise ValueError("offsets do not match the text and the vectors")
        prompts = [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    except (KeyError, ValueError, OSError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not a readable embedding store ({err}); delete it to start a new one"
        ) from None
    return prompts, vectors


def write_store(path: Path, prompts: Sequence[str], vectors: np.ndarray) -> None:
    encoded = [p.encode("utf-8") for p in prompts]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        text=np.frombuffer(b"".join(encoded), np.uint8),
        offsets=offsets,
        embeddings=np.asarray(vectors, np.float32),
    )
    os.replace(tmp, path)


def embedding_store(featurizer: Any) -> Path | None:
    """The store of a frozen-encoder featurizer, loaded into its per-prompt cache; None for
    featurizers without an encoder or a per-prompt cache (nothing to keep). A
    ``"<encoder>+shape"`` featurizer shares the plain encoder's store.

    Example:
        >>> from routellm_jax.models.featurizers import make_embedding_featurizer
        >>> embedding_store(make_embedding_featurizer("hashing:8")) is None
        True
    """
    featurizer = encoder_part(featurizer)
    cache = getattr(featurizer, "cache", None)
    spec = getattr(featurizer, "spec", "")
    if not isinstance(cache, dict) or getattr(featurizer, "embedder", None) is None or not spec:
        return None
    path = store_path(spec)
    if path.is_file():
        prompts, vectors = read_store(path)
        if vectors.ndim != 2 or vectors.shape[1] != getattr(featurizer, "dim", vectors.shape[1]):
            raise ValueError(
                f"{path}: vectors are {vectors.shape[1:]}-wide, featurizer {spec!r} gives "
                f"{getattr(featurizer, 'dim', None)}; delete the file to start a new store"
            )
        for p, v in zip(prompts, vectors):
            cache.setdefault(p, v)
    return path


def save_store(featurizer: Any, store: Path) -> None:
    """Write the featurizer's cached encoder vectors to ``store``, keeping prompts another
    process added meanwhile; atomic (a crash leaves the previous file).
    """
    featurizer = encoder_part(featurizer)
    if store.is_file():
        prompts, vectors = read_store(store)
        for p, v in zip(prompts, vectors):
            featurizer.cache.setdefault(p, v)
    keys = list(featurizer.cache)
    if keys:
        write_store(store, keys, np.stack([featurizer.cache[k] for k in keys]))


def embed_into_store(
    featurizer: Any,
    prompts: Sequence[str],
    store: Path | None,
    chunk: int = 2048,
    progress: bool = False,
) -> int:
    """Embed the prompts the featurizer has not cached yet, saving the store after each chunk
    (an interrupted run keeps its work); returns how many were embedded. ``store`` None: embed
    into the cache only. ``progress`` shows a bar with the rate.
    """
    featurizer = encoder_part(featurizer)
    todo = [p for p in dict.fromkeys(map(str, prompts)) if p not in featurizer.cache]
    if not todo:
        return 0
    log.info("embedding %d new prompts with %s", len(todo), getattr(featurizer, "spec", "?"))
    bar = None
    if progress:
        bar = tqdm(total=len(todo), desc="embedding prompts", unit="prompt")
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        featurizer.embed(part, batch_size=64)
        if store is not None:
            save_store(featurizer, store)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return len(todo)
