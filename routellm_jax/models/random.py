"""The random router: the baseline every routing curve is drawn against.

``win_rate`` is ``Uniform(0, 1)`` drawn from ``fold_in(PRNGKey(seed), hash(prompt))``: a pure
function of (seed, prompt text), so the same prompt gets the same score on every call, in every
process, in any batch order or size (the reference router calls ``random.uniform`` afresh each
time, which makes its curves impossible to reproduce exactly). The prompt hash is the first 4 bytes
of blake2b of the UTF-8 text, not Python's salted ``hash``. The strong/weak pair is ignored: the
same prompt gets the same score for every pair. Routing by a threshold ``t`` sends a fraction
``1 - t`` of prompts to the strong model, independently of the prompt. No parameters.

Example:
    >>> cfg = RandomConfig(seed=0)
    >>> x = prompt_inputs(["hi", "there"], make_featurizer(cfg), cfg)
    >>> bool(win_rate({}, x, 0, 1, cfg)[0] == win_rate({}, x, 1, 0, cfg)[0])
    True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.data.records import OUTCOME_A, OUTCOME_B, TrainingData
from routellm_jax.models.registry import Architecture


@dataclasses.dataclass(frozen=True)
class RandomConfig:
    """Configuration of the ``random`` router.

    Example:
        >>> RandomConfig(seed=3).seed
        3
    """

    seed: int = 0
    models: tuple[str, ...] = ()  # unused by the scores; kept so every router has a model table


def prompt_hash(prompt: str) -> int:
    """Stable 32-bit hash of a prompt (blake2b, identical across processes and machines).

    Example:
        >>> prompt_hash("hello") == prompt_hash("hello")
        True
    """
    return int.from_bytes(hashlib.blake2b(prompt.encode("utf-8"), digest_size=4).digest(), "little")


class PromptHasher:
    """The featurizer of the random router: prompts -> ``uint32`` hashes.

    Example:
        >>> PromptHasher()(["a", "a"]).tolist()[0] == PromptHasher()(["a"]).tolist()[0]
        True
    """

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return np.fromiter((prompt_hash(str(p)) for p in prompts), np.uint32, count=len(prompts))


def init(rng: jax.Array, config: RandomConfig) -> dict:
    """No parameters: an empty dict.

    Example:
        >>> init(jax.random.key(0), RandomConfig())
        {}
    """
    del rng, config
    return {}


def make_featurizer(config: RandomConfig) -> PromptHasher:
    """Example: ``make_featurizer(RandomConfig())(["q"]).dtype`` is uint32."""
    del config
    return PromptHasher()


def examples_from_records(
    data: TrainingData, featurizer: PromptHasher, config: RandomConfig
) -> dict[str, np.ndarray]:
    """Battles as ``prompt_hash`` [n] uint32, ``label`` [n] (1 = model_a won, ties 0.5), ``weight``.

    Only used to measure the baseline's loss: there is nothing to train.

    Example:
        >>> from routellm_jax.data.records import Comparison, ComparisonTable
        >>> d = TrainingData.of(ComparisonTable.from_records([Comparison("q", "x", "y", "b")]))
        >>> examples_from_records(d, PromptHasher(), RandomConfig())["label"].tolist()
        [0.0]
    """
    del config
    table = data.comparisons
    label = np.where(
        table.outcome == OUTCOME_A, 1.0, np.where(table.outcome == OUTCOME_B, 0.0, 0.5)
    ).astype(np.float32)
    return {
        "prompt_hash": featurizer(table.prompt.tolist()),
        "label": label,
        "weight": table.weight.astype(np.float32),
    }


def prompt_inputs(
    prompts: Sequence[str], featurizer: PromptHasher, config: RandomConfig
) -> dict[str, np.ndarray]:
    """``{"prompt_hash": [n] uint32}``.

    Example:
        >>> prompt_inputs(["a", "b"], PromptHasher(), RandomConfig())["prompt_hash"].shape
        (2,)
    """
    del config
    return {"prompt_hash": featurizer(list(prompts))}


@functools.partial(jax.jit, static_argnames=("seed",))
def _scores(prompt_hash: jax.Array, seed: int) -> jax.Array:
    base = jax.random.key(seed)
    keys = jax.vmap(lambda h: jax.random.fold_in(base, h))(prompt_hash.astype(jnp.uint32))
    return jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)


def win_rate(
    params: dict, inputs: dict[str, Any], strong: Any, weak: Any, config: RandomConfig
) -> jax.Array:
    """``[batch]`` scores in [0, 1), a fixed function of (seed, prompt); the pair is ignored.

    Example:
        >>> x = {"prompt_hash": np.array([1, 2], np.uint32)}
        >>> win_rate({}, x, 0, 1, RandomConfig()).shape
        (2,)
    """
    del params, strong, weak
    return _scores(jnp.asarray(inputs["prompt_hash"], jnp.uint32), config.seed)


def loss(
    params: dict, batch: dict[str, jax.Array], rng: jax.Array, config: RandomConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted BCE of the random scores against the battle labels (a baseline number; nothing
    depends on ``params``).

    Example:
        >>> b = {"prompt_hash": jnp.array([1, 2], jnp.uint32), "label": jnp.array([1.0, 0.0])}
        >>> bool(jnp.isfinite(loss({}, b, jax.random.key(0), RandomConfig())[0]))
        True
    """
    # A local import: routing runs only the forward pass, and optax is slow to import (every
    # route command would pay for it).
    import optax

    del rng
    p = win_rate(params, batch, 0, 0, config)
    label = batch["label"].astype(jnp.float32)
    weight = batch.get("weight", jnp.ones_like(label)).astype(jnp.float32)
    logits = jnp.log(p + 1e-7) - jnp.log1p(-p + 1e-7)
    value = (weight * optax.sigmoid_binary_cross_entropy(logits, label)).sum() / jnp.maximum(
        weight.sum(), 1e-12
    )
    return value, {"loss": value}


ARCHITECTURE = Architecture(
    name="random",
    config_cls=RandomConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    description="Uniform score per (seed, prompt), reproducible; the baseline of every curve.",
)
