"""Would an int8 encoder pay on this CPU? One dense layer of the fused MiniLM encoder, three ways.

    python -m tools.bench_int8_dot [--rounds 7] [--reps 20]

Each row is one ``[rows, k] @ [k, n]`` layer at MiniLM's shapes, timed as the fused encoder
would run it, float32 activations in and float32 out:

* ``f32``: a float32 dot;
* ``bf16``: activations cast to bf16, bf16 weights, float32 accumulation (what
  ``precision="bfloat16"`` does);
* ``int8``: activations quantised per row on the fly (symmetric, scale = max |x| / 127),
  weights quantised per output channel ahead of time, an s8 x s8 -> s32 dot, float32 dequantise.

Reported: effective GFLOP/s (``2 * rows * k * n`` over the best round's time per call; rounds
take turns between the three), the int8/bf16 and int8/f32 ratios, and each variant's relative
error against float32 on the same random inputs. An int8 path is only worth building where
int8/bf16 is clearly above 1 (or int8/f32, on CPUs without native bf16).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tools.bench_startup import cpu_model
from tools.bench_train import machine

# (rows, k, n): the attention/FFN projections at a batch of 64 and of 1024 token rows.
SHAPES = ((64, 384, 1536), (64, 1536, 384), (1024, 384, 1536), (1024, 1536, 384))
_MATMUL = (((1,), (0,)), ((), ()))


def dense_f32(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.dot_general(x, w, _MATMUL, preferred_element_type=jnp.float32)


def dense_bf16(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.dot_general(
        x.astype(jnp.bfloat16), w, _MATMUL, preferred_element_type=jnp.float32
    )


def dense_int8(x: jax.Array, w_q: jax.Array, w_scale: jax.Array) -> jax.Array:
    scale = jnp.max(jnp.abs(x), axis=1, keepdims=True) / 127.0
    scale = jnp.where(scale == 0, 1.0, scale)
    x_q = jnp.clip(jnp.round(x / scale), -127, 127).astype(jnp.int8)
    acc = jax.lax.dot_general(x_q, w_q, _MATMUL, preferred_element_type=jnp.int32)
    return acc.astype(jnp.float32) * scale * w_scale


def quantise_per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights and their per-output-channel scales.

    Example:
        >>> q, s = quantise_per_channel(np.array([[1.0, -0.5], [0.5, 0.25]], np.float32))
        >>> q.tolist(), [round(float(v), 4) for v in s[0]]
        ([[127, -127], [64, 64]], [0.0079, 0.0039])
    """
    scale = np.abs(w).max(axis=0, keepdims=True) / 127.0
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def time_layer(rows: int, k: int, n: int, rounds: int, reps: int) -> dict[str, dict[str, float]]:
    """GFLOP/s and relative error (against float32) of each variant on one layer shape."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((rows, k)).astype(np.float32))
    w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
    w_q, w_scale = quantise_per_channel(w)
    variants: dict[str, tuple[Callable[..., jax.Array], tuple[jax.Array, ...]]] = {
        "f32": (jax.jit(dense_f32), (x, jnp.asarray(w))),
        "bf16": (jax.jit(dense_bf16), (x, jnp.asarray(w, jnp.bfloat16))),
        "int8": (jax.jit(dense_int8), (x, jnp.asarray(w_q), jnp.asarray(w_scale))),
    }
    outputs = {m: np.asarray(f(*a).block_until_ready()) for m, (f, a) in variants.items()}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):  # the variants take turns, so load swings hit all three alike
        for name, (fn, args) in variants.items():
            start = time.perf_counter()
            for _ in range(reps):
                out = fn(*args)
            out.block_until_ready()
            best[name] = min(best[name], (time.perf_counter() - start) / reps)
    ref = outputs["f32"]
    return {
        name: {
            "gflops": 2 * rows * k * n / best[name] / 1e9,
            "rel_error": float(np.linalg.norm(outputs[name] - ref) / np.linalg.norm(ref)),
        }
        for name in variants
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    before = machine()["load"]
    print(f"cpu: {cpu_model()}; jax {jax.__version__} ({jax.default_backend()})")
    print("layer | f32 | bf16 | int8 (GFLOP/s) | int8/bf16 | int8/f32 | rel. error bf16 | int8")
    for rows, k, n in SHAPES:
        r = time_layer(rows, k, n, args.rounds, args.reps)
        g = {m: r[m]["gflops"] for m in r}
        print(
            f"{rows}x{k} @ {k}x{n} | {g['f32']:.0f} | {g['bf16']:.0f} | {g['int8']:.0f} | "
            f"{g['int8'] / g['bf16']:.2f} | {g['int8'] / g['f32']:.2f} | "
            f"{r['bf16']['rel_error']:.4f} | {r['int8']['rel_error']:.4f}"
        )
    print(f"load average (1/5/15 min): {before} before, {machine()['load']} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
