"""Threefry keys whose random bits compile to one fused loop on every backend.

JAX lowers its threefry hash on CPU as a five-iteration ``while`` loop (a smaller program), so
XLA cannot fuse the hash with what consumes its bits: every iteration writes two full-size
``uint32`` arrays to memory. A train step draws many bits (dropout masks over attention
probabilities, the embedding noise of ``mf``/``irt``), so on CPU the rolled hash can cost more
than the step's matmuls. :data:`FUSED_THREEFRY` is the same PRNG (JAX's threefry2x32 with
``jax_threefry_partitionable``, JAX's default: seed, split and fold-in are JAX's own) whose
``random_bits`` spells the twenty rounds out in ``jnp`` ops, so the hash fuses with its consumer;
the bits are identical to JAX's (``tests/training/test_prng.py`` checks them), so training
results and resumed runs do not change.

Example:
    >>> raw = jax.random.PRNGKey(0)
    >>> fused = fused_key(raw)
    >>> bool((jax.random.bits(fused, (3,)) == jax.random.bits(raw, (3,))).all())
    True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import random as jex_random

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
_UINT = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint64}


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32_unrolled(
    k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher (20 rounds, Salmon et al. 2011) on counter pairs
    ``(x1, x2)`` under key ``(k1, k2)``, all ``uint32``: JAX's ``threefry2x32`` hash, unrolled.

    Example:
        >>> u = lambda v: jnp.asarray(v, jnp.uint32)
        >>> [hex(int(v)) for v in threefry2x32_unrolled(u(0), u(0), u(0), u(0))]  # known answer
        ['0x6b200159', '0x99ba4efe']
    """
    keys = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + keys[0], x2 + keys[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + keys[(i + 1) % 3]
        x2 = x2 + keys[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _counts(shape: tuple[int, ...]) -> jax.Array:
    """``arange(prod(shape)).reshape(shape)`` as ``uint32``, from broadcast iotas (which the SPMD
    partitioner splits like any elementwise op, as JAX's ``iota_2x32_shape``)."""
    if not shape:
        return jnp.zeros((), jnp.uint32)
    strides = np.cumprod((1, *shape[::-1]))[:-1][::-1]
    total = lax.broadcasted_iota(jnp.uint32, shape, 0) * np.uint32(strides[0])
    for dim, stride in enumerate(strides[1:], start=1):
        total = total + lax.broadcasted_iota(jnp.uint32, shape, dim) * np.uint32(stride)
    return total


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    """JAX's partitionable threefry ``random_bits``: counter ``i`` (a 64-bit iota split into two
    words) hashed under the key; the two output words are xor-ed (concatenated for 64 bits).
    Under ``jax_threefry_partitionable=False`` JAX lays its bits out otherwise: its own code."""
    if not jax.config.jax_threefry_partitionable:  # JAX's other layout: its own bits
        return _BASE.random_bits(key, bit_width, shape)
    shape = tuple(int(d) for d in shape)
    if math.prod(shape) >= 2**32:  # the counter's high word is used: JAX's own (rolled) code
        return _BASE.random_bits(key, bit_width, shape)
    if bit_width not in _UINT:
        raise TypeError(f"random bits of width {bit_width}: expected 8, 16, 32 or 64")
    low = _counts(shape)
    hi_bits, lo_bits = threefry2x32_unrolled(key[0], key[1], jnp.zeros_like(low), low)
    dtype = _UINT[bit_width]
    if bit_width == 64:
        return (hi_bits.astype(dtype) << dtype(32)) | lo_bits.astype(dtype)
    mixed = hi_bits ^ lo_bits
    return mixed if bit_width == 32 else mixed.astype(dtype)


_BASE = jex_random.threefry_prng_impl
FUSED_THREEFRY = jex_random.define_prng_impl(
    key_shape=(2,),
    seed=_BASE.seed,
    split=_BASE.split,
    random_bits=_random_bits,
    fold_in=_BASE.fold_in,
    name="threefry2x32_fused",
    tag="fryf",
)


def fused_key(raw: jax.Array) -> jax.Array:
    """A typed :data:`FUSED_THREEFRY` key holding a raw ``uint32[2]`` threefry key's words (draws
    from it equal the raw key's)."""
    return jax.random.wrap_key_data(raw, impl=FUSED_THREEFRY)
