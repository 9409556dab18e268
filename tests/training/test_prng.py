"""The train step's keys: JAX's threefry draws, bit for bit, from a hash XLA can fuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from routellm_jax.training.prng import fused_key, threefry2x32_unrolled
from routellm_jax.training.train import step_key

SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (16, 12, 9, 9)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32])
def test_bits_equal_jax_threefry(shape: tuple[int, ...], dtype) -> None:
    raw = jax.random.fold_in(jax.random.PRNGKey(11), 5)
    ours = jax.jit(lambda k: jax.random.bits(fused_key(k), shape, dtype))(raw)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.random.bits(raw, shape, dtype)))


def test_distributions_split_and_fold_in_equal_jax_threefry() -> None:
    raw = jax.random.PRNGKey(3)
    key = fused_key(raw)

    def draws(k):
        a, b = jax.random.split(jax.random.fold_in(k, 9))
        return (
            jax.random.normal(a, (33, 7)),
            jax.random.uniform(b, (5,)),
            jax.random.bernoulli(jax.random.fold_in(k, 2), 0.9, (4, 3, 8, 8)),
            jax.random.randint(a, (6,), 0, 1000),
        )

    for ours, theirs in zip(jax.jit(draws)(key), jax.jit(draws)(raw)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_known_answer() -> None:
    # Random123's known-answer vector for threefry2x32_20 (key and counter all ones).
    ones = jnp.asarray(0xFFFFFFFF, jnp.uint32)
    got = threefry2x32_unrolled(ones, ones, ones, ones)
    assert [int(v) for v in got] == [0x1CB996FC, 0xBB002BE7]


def test_step_key_draws_fuse_into_one_loop() -> None:
    """The property that makes the fused key cheap: no rolled hash loop in the step's program
    (JAX's own threefry lowers to a ``while`` on CPU), so the draws fuse with their consumers."""
    base = jax.random.PRNGKey(0)

    def dropout_mask(step):
        return jax.random.bernoulli(step_key(base, step), 0.9, (8, 64))

    hlo = jax.jit(dropout_mask).lower(jnp.int32(4)).as_text()
    random_bits = [line for line in hlo.splitlines() if "stablehlo.while" in line]
    # Only fold_in (a two-word hash of the step number) may still loop; the mask's bits do not.
    assert len(random_bits) <= 1, random_bits
    expected = jax.random.bernoulli(jax.random.fold_in(base, 4), 0.9, (8, 64))
    np.testing.assert_array_equal(np.asarray(jax.jit(dropout_mask)(jnp.int32(4))), expected)
