"""How fast our BERT-classifier training step could get by making its non-matmul layers cheaper:
the step as trained, then with parts of that work removed outright, each against transformers in
the same run; and the step's own matmul shapes timed alone in JAX and in torch.

    python -m tools.bert_step_bound [--steps 4] [--rounds 5] [--dtype float32|bfloat16]

Variants of our step (``tools/bench_train.py``'s BERT loop: MiniLM-L6 shapes, batch 16 x 128
tokens, AdamW, through the ``Trainer``):

* ``as trained``: dropout on, exact GELU, LayerNorm, softmax;
* ``no dropout``: dropout rates 0 (no random bits drawn, no masks applied);
* ``no dropout, GELU, LayerNorm, softmax``: GELU and LayerNorm replaced by the identity as well,
  and the softmax by masking alone (padding scores set to 0: a select XLA fuses into a neighbour;
  values stay finite).

The last one is no model anyone would train. It bounds what any rewrite of those layers (another
random-bit generator, a fused LayerNorm, a cheaper GELU) could buy, since their whole cost is gone;
what it still runs is the matmuls, the attention's batched products and head transposes, the
embedding lookup and its gradient, the loss and AdamW. If that variant is short of a target ratio
against transformers, no change to those layers reaches the target.

The reference is transformers' ``BertForSequenceClassification`` loop in float32, or under
``torch.autocast(bfloat16)`` when ``--dtype bfloat16`` (torch's own mixed precision), at every
``--torch-threads`` count, its best counting; rounds alternate the loops and each side's best
round counts (``tools/bench_train.py``'s rules). The matmul table times each dense layer's three
products (forward, input gradient, weight gradient) alone, as jitted ``dot_general`` calls and as
torch matmuls in the same process, the two taking turns: a gap between the two libraries on
these shapes would show there.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from routellm_jax.models.encoders import bert as bert_module
from tools.bench_startup import cpu_model
from tools.bench_train import (
    MINILM,
    TINY,
    at_threads,
    bert_data,
    best_of,
    interleaved,
    machine,
    prepare_bert_jax,
    prepare_bert_torch,
)

_MASKED = -1e30  # below any real attention score, above the padding bias (float32's minimum)
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


class _Identity(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


@contextlib.contextmanager
def without_elementwise_layers() -> Iterator[None]:
    """While open, encoders built and traced get the identity for GELU, LayerNorm and the
    attention softmax (a measurement only: the originals come back on exit).

    Example:
        >>> x = jnp.array([-1.0, 2.0])
        >>> with without_elementwise_layers():
        ...     jax.nn.softmax(x).tolist(), jax.nn.softmax(jnp.finfo(jnp.float32).min).tolist()
        ([-1.0, 2.0], 0.0)
        >>> round(float(jax.nn.softmax(x)[1]), 3)
        0.953
    """
    activations = dict(bert_module._ACTIVATIONS)
    layer_norm, softmax = bert_module._layer_norm, jax.nn.softmax
    bert_module._ACTIVATIONS.update({name: (lambda x: x) for name in activations})
    bert_module._layer_norm = lambda cfg, param_dtype, name: _Identity(name=name)
    # Masking alone: the padding scores' large negative bias becomes 0, so values stay finite.
    jax.nn.softmax = lambda x, axis=-1, **_: jnp.where(x < _MASKED, 0.0, x)
    try:
        yield
    finally:
        bert_module._ACTIVATIONS.update(activations)
        bert_module._layer_norm, jax.nn.softmax = layer_norm, softmax


def variant_loops(data: dict, batch: int, dtype: Any, shapes: dict[str, int] = MINILM) -> dict:
    """Our step as trained and with its non-matmul layers removed (compiled, warmed up)."""
    loops = {
        "ours, as trained": prepare_bert_jax(data, batch, shapes=shapes, dtype=dtype),
        "ours, no dropout": prepare_bert_jax(
            data, batch, shapes={**shapes, **NO_DROPOUT}, dtype=dtype
        ),
    }
    with without_elementwise_layers():  # the step is traced and compiled inside
        loops["ours, no dropout, GELU, LayerNorm, softmax"] = prepare_bert_jax(
            data, batch, shapes={**shapes, **NO_DROPOUT}, dtype=dtype
        )
    return loops


def _best_seconds(runs: dict[str, tuple[Callable[..., Any], tuple]], repeats: int) -> dict:
    """Each ``name -> (fn, operands)``'s best time over ``repeats`` calls, the calls taking turns
    so that a change of load reaches every side alike (after one untimed call each)."""
    for fn, operands in runs.values():
        fn(*operands)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, (fn, operands) in runs.items():
            start = time.perf_counter()
            fn(*operands)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# One encoder layer's dense layers: (name, how many of that shape per layer, input, output width).
def _dense_layers(hidden: int, intermediate: int) -> tuple[tuple[str, int, int, int], ...]:
    return (
        ("attention q/k/v/output", 4, hidden, hidden),
        ("intermediate", 1, hidden, intermediate),
        ("output", 1, intermediate, hidden),
    )


def matmul_shapes(
    tokens: int, hidden: int, intermediate: int
) -> list[tuple[str, int, int, int, int]]:
    """``(name, count, m, k, n)`` of one encoder layer's dense products over ``tokens`` rows, one
    per layer shape (``count``: how many of the layer's dense layers have it): forward ``x @ W``,
    input gradient ``dy @ W.T`` and weight gradient ``x.T @ dy``.

    Example:
        >>> matmul_shapes(8, 4, 16)[:3]
        [('attention q/k/v/output forward', 4, 8, 4, 4), ('attention q/k/v/output input gradient', 4, 8, 4, 4), ('attention q/k/v/output weight gradient', 4, 4, 8, 4)]
    """
    out = []
    for name, count, d_in, d_out in _dense_layers(hidden, intermediate):
        out += [
            (f"{name} forward", count, tokens, d_in, d_out),
            (f"{name} input gradient", count, tokens, d_out, d_in),
            (f"{name} weight gradient", count, d_in, tokens, d_out),
        ]
    return out


def dense_matmul_seconds(rates: Sequence[dict[str, Any]], layers: int, library: str) -> float:
    """Seconds per training step the encoder's dense products take at ``library``'s rates alone
    (:func:`matmul_rates` rows): each shape as often as the layers use it.

    Example:
        >>> rows = [{"count": c, "shape": (m, k, n), "jax": 1.0}
        ...         for _, c, m, k, n in matmul_shapes(8, 4, 16)]
        >>> round(dense_matmul_seconds(rows, layers=1, library="jax") * 1e9)
        9216
    """
    seconds = sum(
        row["count"] * 2.0 * np.prod(row["shape"]) / (row[library] * 1e9) for row in rates
    )
    return layers * float(seconds)


def matmul_rates(
    shapes: Sequence[tuple[str, int, int, int, int]],
    dtype: Any,
    torch_threads: int,
    repeats: int = 10,
) -> list[dict[str, Any]]:
    """GFLOP/s of each :func:`matmul_shapes` product alone: JAX (``dtype`` operands, float32
    accumulation, as the encoder's matmuls) and torch (the same dtype, its default output)."""
    import torch  # local: torch (dev extra)

    torch.set_num_threads(torch_threads)
    torch_dtype = torch.bfloat16 if dtype == jnp.bfloat16 else torch.float32
    jitted = jax.jit(lambda a, b: jax.lax.dot(a, b, preferred_element_type=jnp.float32))

    def product(a: jax.Array, b: jax.Array) -> jax.Array:
        return jitted(a, b).block_until_ready()

    rng = np.random.default_rng(0)
    rows = []
    for name, count, m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ja, jb = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
        ta, tb = torch.from_numpy(a).to(torch_dtype), torch.from_numpy(b).to(torch_dtype)
        flops = 2.0 * m * k * n
        best = _best_seconds(
            {"jax": (product, (ja, jb)), "torch": (torch.matmul, (ta, tb))}, repeats
        )
        rows.append(
            {"name": name, "count": count, "shape": (m, k, n),
             **{library: flops / seconds / 1e9 for library, seconds in best.items()}}
        )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per loop and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--torch-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--target", type=float, default=1.3, help="ratio to compare against")
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer, 32-wide encoder (a quick check of the tool)"
    )
    args = parser.parse_args(argv)
    shapes = dict(TINY if args.tiny else MINILM)
    before = machine()["load"]
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    autocast = dtype == jnp.bfloat16
    n_rows = max(256, args.batch * (args.steps * args.rounds + 8))
    data = bert_data(n_rows, args.seq, shapes["vocab_size"])
    loops = {
        f"transformers@{t}": at_threads(
            t, prepare_bert_torch(data, args.batch, shapes=shapes, autocast_bf16=autocast)
        )
        for t in args.torch_threads
    }
    loops.update(variant_loops(data, args.batch, dtype, shapes))
    timed = interleaved(loops, args.steps, args.rounds)
    reference = best_of(timed, "transformers@")
    ref_rate = reference["examples_per_s"]
    label = "under bf16 autocast" if autocast else "float32"
    print(f"cpu: {cpu_model()}; jax {jax.__version__} ({jax.default_backend()})")
    print(
        f"BERT classifier step, batch {args.batch} x {args.seq} tokens, {args.dtype} matmuls"
        f"{' (tiny encoder)' if args.tiny else ''}; transformers {label}: {ref_rate:.1f} "
        f"examples/s ({reference['threads']} threads); {args.target}x that is "
        f"{args.target * ref_rate:.1f}"
    )
    print("variant | examples/s | / transformers | ms per step | last loss")
    for name, row in timed.items():
        rate = row["examples_per_s"]
        print(
            f"{name} | {rate:.1f} | {rate / ref_rate:.2f}x | {args.batch / rate * 1e3:.0f} | "
            f"{row['loss']:.4f}"
        )
    tokens = args.batch * args.seq
    rates = matmul_rates(
        matmul_shapes(tokens, shapes["hidden_size"], shapes["intermediate_size"]),
        dtype,
        max(args.torch_threads),
    )
    print(f"matmul alone ({args.dtype} operands) | m x k x n | JAX GFLOP/s | torch GFLOP/s")
    for row in rates:
        m, k, n = row["shape"]
        print(f"{row['name']} | {m}x{k}x{n} | {row['jax']:.0f} | {row['torch']:.0f}")
    layers = shapes["num_hidden_layers"]
    jax_ms, torch_ms = (
        dense_matmul_seconds(rates, layers, library) * 1e3 for library in ("jax", "torch")
    )
    print(
        f"the {layers} layers' dense products alone, per step: {jax_ms:.0f} ms at JAX's rates, "
        f"{torch_ms:.0f} ms at torch's; {args.target}x transformers needs a whole step in "
        f"{args.batch / (args.target * ref_rate) * 1e3:.0f} ms"
    )
    print(f"load average (1/5/15 min): {before} before, {machine()['load']} after")
    return {
        "timed": timed,
        "transformers": reference,
        "matmuls": rates,
        "dense_matmul_ms": {"jax": jax_ms, "torch": torch_ms},
    }


if __name__ == "__main__":
    main()
