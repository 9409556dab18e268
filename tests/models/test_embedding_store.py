"""The machine's embedding store: one file per frozen encoder, shared by training and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from routellm_jax.models import embedding_store as S


class _Encoder:
    """A stand-in frozen-encoder featurizer: counts how many prompts it really embeds."""

    spec = "fake-encoder"
    dim = 4
    embedder = object()

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}
        self.embedded = 0

    def embed(self, prompts, batch_size: int = 64) -> np.ndarray:
        for p in prompts:
            if p not in self.cache:
                self.embedded += 1
                self.cache[p] = np.full(self.dim, len(p), np.float32)
        return np.stack([self.cache[p] for p in prompts])


def test_a_second_run_embeds_nothing_the_first_stored(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path))
    first = _Encoder()
    store = S.embedding_store(first)
    assert store == tmp_path / "embeddings" / "fake-encoder.npz" and not store.exists()
    prompts = ["What is 2+2?", "Écris un poème", "x" * 3000]
    assert S.embed_into_store(first, prompts, store, chunk=2) == 3
    second = _Encoder()
    assert S.embedding_store(second) == store
    assert S.embed_into_store(second, prompts + ["new"], store) == 1 and second.embedded == 1
    np.testing.assert_array_equal(second.cache["x" * 3000], np.full(4, 3000, np.float32))
    # Prompts another process stored meanwhile are kept when this one saves.
    third = _Encoder()
    third.cache["only third"] = np.zeros(4, np.float32)
    S.save_store(third, store)
    texts, vectors = S.read_store(store)
    assert set(texts) == {*prompts, "new", "only third"} and vectors.shape == (5, 4)


def test_damaged_or_foreign_store_is_an_error_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ROUTELLM_JAX_CACHE", str(tmp_path))
    path = S.store_path("fake-encoder")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="fake-encoder.npz: not a readable embedding store"):
        S.embedding_store(_Encoder())
    S.write_store(path, ["a"], np.zeros((1, 8), np.float32))  # another encoder's width
    with pytest.raises(ValueError, match="8,\\)-wide"):
        S.embedding_store(_Encoder())
    np.savez(
        path, text=np.zeros(3, np.uint8), offsets=np.array([0, 9]), embeddings=np.zeros((1, 4))
    )
    with pytest.raises(ValueError, match="offsets do not match"):
        S.embedding_store(_Encoder())


def test_featurizers_without_an_encoder_have_no_store() -> None:
    from routellm_jax.models.featurizers import make_embedding_featurizer

    assert S.embedding_store(make_embedding_featurizer("hashing:8+shape")) is None
