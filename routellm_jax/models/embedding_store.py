"""Frozen-encoder embeddings kept on disk between exports: ``<cache>/zoo/embeddings/<spec>.npz``.

Every export of an entry on the same encoder scores the same reference prompts and benchmarks;
keeping their vectors on disk means each is embedded once per machine, not once per export. The
file holds only float arrays and strings (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from routellm_jax.models.featurizers import encoder_part
from routellm_jax.zoo.cache import zoo_cache


def embedding_store(featurizer: Any) -> Path | None:
    """Where a frozen-encoder featurizer's embeddings are kept between exports
    (``<cache>/zoo/embeddings/<spec>.npz``), loading what is already there; None for featurizers
    without an encoder or a per-prompt cache.

    Example:
        >>> embedding_store(make_embedding_featurizer("all-MiniLM-L6-v2"))  # doctest: +SKIP
        PosixPath('/root/.cache/routellm_jax/zoo/embeddings/all-MiniLM-L6-v2.npz')
    """
    # A "<encoder>+shape" featurizer shares the plain encoder's store (its encoder part's cache).
    featurizer = encoder_part(featurizer)
    cache = getattr(featurizer, "cache", None)
    spec = getattr(featurizer, "spec", "")
    if not isinstance(cache, dict) or getattr(featurizer, "embedder", None) is None or not spec:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
    path = zoo_cache() / "embeddings" / f"{safe}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            cache.update(zip(z["prompts"].tolist(), z["embeddings"]))
    return path


def embed_into_store(
    featurizer: Any, prompts: Sequence[str], store: Path, chunk: int = 1024
) -> None:
    """Embed the prompts the featurizer has not cached yet, saving the store after each chunk
    (so an interrupted run keeps its work). The file holds only float arrays and strings.

    Example:
        >>> embed_into_store(featurizer, bench.prompts, embedding_store(featurizer))  # doctest: +SKIP
    """
    featurizer = encoder_part(featurizer)  # the store holds encoder vectors, never concatenations
    todo = [p for p in dict.fromkeys(prompts) if p not in featurizer.cache]
    for start in range(0, len(todo), chunk):
        featurizer.embed(todo[start : start + chunk], batch_size=64)
        if store.is_file():  # another export may have added prompts meanwhile: keep them
            with np.load(store, allow_pickle=False) as z:
                for p, v in zip(z["prompts"].tolist(), z["embeddings"]):
                    featurizer.cache.setdefault(p, v)
        keys = list(featurizer.cache)
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(store.name + ".tmp.npz")
        np.savez(
            tmp,
            prompts=np.array(keys, dtype=str),
            embeddings=np.stack([featurizer.cache[k] for k in keys]).astype(np.float32),
        )
        os.replace(tmp, store)
