"""``train(..., featurizer=...)``: the trainer embeds with an injected featurizer (e.g. the grid's
cached MiniLM embeddings) instead of building the architecture's own, and refuses one whose width
is not the config's ``text_dim``."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest
import tiny_router

from routellm_jax.models.featurizers import HashingFeaturizer
from routellm_jax.training.config import default_config
from routellm_jax.training.train import train


class SpyFeaturizer(HashingFeaturizer):
    """Hashing vectors, recording every prompt it is asked to embed."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.seen: set[str] = set()

    def _embed_new(self, prompts: list[str], batch_size: int) -> np.ndarray:
        self.seen.update(prompts)
        return super()._embed_new(prompts, batch_size)


def _config(text_dim: int) -> ml_collections.ConfigDict:
    # sw_ranking is built, not trained: the featurizer is what the run exercises.
    c = default_config()
    c.arch = "sw_ranking"
    c.arch_config = ml_collections.ConfigDict(dict(featurizer="hashing:8", text_dim=text_dim))
    c.steps = 0
    c.checkpoint.async_save = False
    return c


def test_trainer_embeds_with_the_injected_featurizer(tmp_path) -> None:
    data = tiny_router.make_data(64)
    spy = SpyFeaturizer(8)
    result = train(_config(8), tmp_path / "run", data=data, progress=False, featurizer=spy)
    assert result.step == 0
    assert spy.seen == set(data.comparisons.prompt.tolist())
    # The checkpoint keeps the config's spec: an exported router builds its own featurizer.
    saved = json.loads((tmp_path / "run" / "checkpoints" / "0" / "config" / "metadata").read_text())
    assert saved["arch_config"]["featurizer"] == "hashing:8"


def test_injected_featurizer_of_another_width_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="gives 16-d vectors but arch_config.text_dim = 8"):
        train(
            _config(8),
            tmp_path / "run",
            data=tiny_router.make_data(64),
            progress=False,
            featurizer=SpyFeaturizer(16),
        )
    assert not list((tmp_path / "run" / "checkpoints").iterdir())  # nothing saved
