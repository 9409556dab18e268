"""A tiny MLP router over hashed prompt features, for the training-framework tests.

It follows the full Architecture contract (init, featurizer, examples, loss with an rng-driven
feature noise, win_rate, partition rules), so the tests exercise the same paths a real router does
without loading an encoder.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.data.records import Comparison, ComparisonTable, TrainingData
from routellm_jax.models.registry import Architecture


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    dim: int = 16
    hidden: int = 32
    noise: float = 0.1
    models: tuple[str, ...] = ()
    pretrained: bool = False  # like bert/causal_llm: the trainer then initialises eagerly


def init(rng, config):
    k1, k2 = jax.random.split(rng)
    return {
        "dense": {
            "kernel": jax.random.normal(k1, (config.dim, config.hidden)) / np.sqrt(config.dim),
            "bias": jnp.zeros((config.hidden,)),
        },
        "out": {"kernel": jax.random.normal(k2, (config.hidden, 1)) / np.sqrt(config.hidden)},
    }


def make_featurizer(config):
    def featurize(prompts):
        out = np.zeros((len(prompts), config.dim), np.float32)
        for i, p in enumerate(prompts):
            for tok in str(p).split():
                out[i, zlib.crc32(tok.encode()) % config.dim] += 1.0
        return out

    return featurize


def examples_from_records(data, featurizer, config):
    table = data.comparisons
    return {
        "x": featurizer(list(table.prompt)),
        "y": (table.outcome == 0).astype(np.float32),
        "weight": table.weight.astype(np.float32),
    }


def _logits(params, x):
    h = jnp.tanh(x @ params["dense"]["kernel"] + params["dense"]["bias"])
    return (h @ params["out"]["kernel"])[:, 0]


def loss(params, batch, rng, config):
    x = batch["x"] + config.noise * jax.random.normal(rng, batch["x"].shape)
    logits = _logits(params, x)
    y = batch["y"]
    per = jnp.logaddexp(0.0, logits) - y * logits
    w = batch["weight"]
    value = jnp.sum(per * w) / jnp.sum(w)
    acc = jnp.mean(((logits > 0) == (y > 0.5)).astype(jnp.float32))
    return value, {"accuracy": acc}


def prompt_inputs(prompts, featurizer, config):
    return {"x": featurizer(list(prompts))}


def win_rate(params, inputs, strong, weak, config):
    return jax.nn.sigmoid(_logits(params, inputs["x"]))


ARCHITECTURE = Architecture(
    name="tiny_test_router",
    config_cls=TinyConfig,
    init=init,
    make_featurizer=make_featurizer,
    examples_from_records=examples_from_records,
    loss=loss,
    prompt_inputs=prompt_inputs,
    win_rate=win_rate,
    partition_rules=(
        (r"dense/kernel$", ("embed", "mlp")),
        (r"dense/bias$", ("mlp",)),
        (r"out/kernel$", ("mlp", None)),
    ),
    description="test-only MLP router",
)


def register():
    from routellm_jax.models import registry

    registry.register(ARCHITECTURE, overwrite=True)
    return ARCHITECTURE


WORDS = "code math poem story sql proof joke essay riddle physics chemistry translate".split()


def make_data(n: int, seed: int = 0) -> TrainingData:
    """Synthetic battles whose outcome depends on the words in the prompt (learnable)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        words = rng.choice(WORDS, size=4)
        hard = sum(w in ("math", "proof", "physics", "sql", "code") for w in words)
        outcome = "a" if rng.random() < 0.2 + 0.2 * hard else "b"
        rows.append(Comparison(" ".join(words), "strong", "weak", outcome))
    return TrainingData.of(comparisons=ComparisonTable.from_records(rows))


def base_config(records: str, steps: int = 8, **over):
    from routellm_jax.training.config import default_config

    c = default_config()
    c.name = "tiny"
    c.arch = "tiny_test_router"
    c.data.records = records
    c.data.holdout_fraction = 0.125
    c.batch_size = 16
    c.steps = steps
    c.log_every = 2
    c.eval.every = 4
    c.eval.batch_size = 16
    c.checkpoint.every = 2
    c.checkpoint.keep = 2
    # Two steps per dispatch: every run of these tests (8 devices, 2 processes, kill + resume)
    # goes through the scanned multi-step path, with the examples gathered on the devices.
    c.steps_per_dispatch = 2
    c.optimizer.lr = 0.05
    c.optimizer.warmup_steps = 2
    for k, v in over.items():
        from routellm_jax.training.config import set_by_path

        set_by_path(c, k, v)
    return c
