"""The bucketed executor: every compiled forward pass of inference runs through it.

Prompts arrive in any number and any length; a compiled XLA executable has one fixed shape. The
executor bridges the two in the same way for every caller:

* **plan**: prompts are sorted by length (tokens) and cut into contiguous chunks by
  :func:`plan_chunks`, each chunk padded to one of a few lengths (:data:`LENGTH_BUCKETS`: steps of
  8 tokens up to 64, coarser above) and one of a few row counts (:data:`ROW_BUCKETS`, powers of
  two), so padding stays near 10% of the real tokens while the set of shapes stays small;
* **compile cache**: each input shape is lowered and compiled once, ahead of time
  (``jit(f).lower(...).compile()``), under a lock so concurrent callers (a server's threads)
  compile a shape once; a warm executor never recompiles. Across processes, JAX's persistent
  compilation cache (:func:`enable_compile_cache`, in :func:`routellm_jax.paths.compile_cache_dir`)
  turns a later process's compile of the same shape into a read from disk;
* **dispatch**: chunks are dispatched asynchronously, so the host pads the next chunk while the
  device runs the previous one, and results are gathered back into the callers' order;
* **stats**: compiles and compile time, shapes, calls, host time, steady-state device time,
  real and padded tokens (:class:`ExecStats`).

It serves the sentence embedder (:mod:`routellm_jax.models.encoders.embedder`), the router
runners (:mod:`routellm_jax.models.inference`: the fused encoder+head path, the token path of
bert/causal_llm and the plain vector path) and through them :class:`routellm_jax.api.Router`.
It lives in ``models`` because the embedder, below the API, needs it as much as the API does; it
knows shapes, executables and timings, nothing of architectures, zoo entries or routing policy.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from routellm_jax import paths

# Length grid: steps of 8 tokens up to 64 (where GSM8K/MT-Bench prompts sit, 60-70 tokens on
# average), coarser above, so padding stays under ~15% of a prompt while the number of compiled
# shapes stays bounded.
LENGTH_BUCKETS: tuple[int, ...] = (
    8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 448, 512,
)  # fmt: skip
ROW_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# On CPU a chunk holds at most this many padded tokens: past ~1024 tokens the [tokens, 1536]
# activations of a MiniLM layer leave the cache and bigger chunks run slower per token.
CPU_CHUNK_TOKENS = 1024


# What the persistent cache keeps: executables that took at least this many seconds to compile
# (JAX's default, 1 s, would skip most router shapes, whose compiles are shorter on a fast CPU and
# still most of a route command's first call; an entry much quicker to compile than this saves
# less than reading it costs), in a folder of at most this many bytes (least recently used
# entries go first).
CACHE_MIN_COMPILE_S = 0.1
CACHE_MAX_BYTES = 1 << 30
_cache_lock = threading.Lock()
_cache_configured = False


def enable_compile_cache() -> str | None:
    """Point JAX's persistent compilation cache at :func:`routellm_jax.paths.compile_cache_dir`
    (once per process) and return the folder in use, or ``None`` when there is none.

    A folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``, ``jax.config``) is kept
    with its settings; so are ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` and
    ``JAX_COMPILATION_CACHE_MAX_SIZE`` when set. ``ROUTELLM_JAX_COMPILE_CACHE=off`` (or a folder
    that cannot be written) leaves JAX's configuration alone.
    """
    global _cache_configured
    with _cache_lock:
        if not _cache_configured:
            _cache_configured = True
            folder = paths.compile_cache_dir()
            if folder is not None and not jax.config.jax_compilation_cache_dir:
                jax.config.update("jax_compilation_cache_dir", str(folder))
                for option, value in (
                    ("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S),
                    ("jax_compilation_cache_max_size", CACHE_MAX_BYTES),
                ):
                    if option.upper() not in os.environ:  # the user's own setting wins
                        jax.config.update(option, value)
        return jax.config.jax_compilation_cache_dir or None


class Chunk(NamedTuple):
    """One compiled call: the prompt positions it holds, its padded rows and padded length."""

    index: np.ndarray
    rows: int
    length: int


def bucket_grid(buckets: Sequence[int], limit: int) -> tuple[int, ...]:
    """``buckets`` below ``limit``, plus ``limit`` itself (the largest shape a caller allows).

    Example:
        >>> bucket_grid(ROW_BUCKETS, 48)
        (1, 2, 4, 8, 16, 32, 48)
    """
    return tuple(sorted({int(b) for b in buckets if b < limit} | {int(limit)}))


def backend_limits(chunk_tokens: int | None = None) -> tuple[int | None, float]:
    """``(max_tokens, dispatch_tokens)`` for the default backend: on CPU chunks are capped at
    :data:`CPU_CHUNK_TOKENS` padded tokens and a call costs about 32 tokens of work; on
    accelerators there is no cap and a call costs more than padding does. ``chunk_tokens``
    overrides the cap.

    Example:
        >>> backend_limits(256)[0]
        256
    """
    on_cpu = jax.default_backend() == "cpu"
    return chunk_tokens or (CPU_CHUNK_TOKENS if on_cpu else None), 32.0 if on_cpu else 4096.0


def plan_chunks(
    lengths: Sequence[int],
    *,
    length_buckets: Sequence[int] = LENGTH_BUCKETS,
    row_buckets: Sequence[int] = ROW_BUCKETS,
    max_tokens: int | None = CPU_CHUNK_TOKENS,
    dispatch_tokens: float = 32.0,
) -> list[Chunk]:
    """Cut prompts into :class:`Chunk` s of similar length.

    Prompts are sorted by length; the sorted list is cut into contiguous chunks by dynamic
    programming, minimising the estimated work ``sum(dispatch_tokens + rows * length * (1 +
    length / 2048))`` (padded rows and length, the second term the attention's share), subject to
    ``rows * length <= max_tokens`` (a single row is always allowed). ``dispatch_tokens`` is the
    fixed cost of one call in token-equivalents (streaming the weights, launching), so the plan
    only splits a batch when padding would waste more than a call costs. A prompt longer than
    every length bucket gets the largest one (callers truncate or add their width as a bucket).

    Example:
        >>> [(i.tolist(), r, n) for i, r, n in plan_chunks([5, 60, 7, 58], max_tokens=None)]
        [([0, 2], 2, 8), ([3, 1], 2, 64)]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    buckets = np.asarray(sorted(length_buckets), dtype=np.int64)
    chunk_len = buckets[np.minimum(np.searchsorted(buckets, sorted_len), len(buckets) - 1)]
    rows_sorted = np.asarray(sorted(row_buckets), dtype=np.int64)
    max_rows = int(rows_sorted[-1])
    # rowpad[k]: the row bucket a chunk of k prompts is padded to.
    rowpad = rows_sorted[np.searchsorted(rows_sorted, np.arange(max_rows + 1))[: max_rows + 1]]
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        length = int(chunk_len[i - 1])  # sorted ascending: the chunk's longest is its last
        k_max = min(i, max_rows)
        if max_tokens is not None:
            fits = rows_sorted[rows_sorted * length <= max_tokens]
            k_max = min(k_max, int(fits[-1]) if fits.size else 1)
        ks = np.arange(1, k_max + 1)
        cost = best[i - ks] + dispatch_tokens + rowpad[ks] * length * (1.0 + length / 2048.0)
        j = int(np.argmin(cost))
        best[i], cut[i] = cost[j], ks[j]
    plan = []
    i = n
    while i > 0:
        k = int(cut[i])
        plan.append(Chunk(order[i - k : i], int(rowpad[k]), int(chunk_len[i - 1])))
        i -= k
    return plan[::-1]


@dataclasses.dataclass
class ExecStats:
    """Counters of an executor (and of the router reporting them, :attr:`Router.stats`)."""

    compiles: int = 0
    compile_s: float = 0.0
    shapes: list[str] = dataclasses.field(default_factory=list)
    calls: int = 0
    prompts: int = 0
    featurize_s: float = 0.0  # host work: tokenizing, host features, padding
    steady_s: float = 0.0  # device work of already-compiled shapes (compiling and host excluded)
    tokens: int = 0  # real prompt tokens (token inputs only) ...
    padded_tokens: int = 0  # ... and the tokens the compiled calls ran on, padding included


def _shape_key(args: tuple) -> Hashable:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return tree, tuple((np.shape(x), np.dtype(getattr(x, "dtype", type(x))).str) for x in leaves)


class BucketedExecutor:
    """Plan, compile once per shape, dispatch asynchronously, gather: one compiled function.

    ``fn(*constants, *chunk_args)`` is the pure function to run; ``constants`` (parameters) are
    the same for every chunk, ``chunk_args`` come from the caller's ``build(chunk)`` for each
    planned :class:`Chunk`. The first output axis of ``fn`` is the chunk's rows.

    Example:
        >>> ex = BucketedExecutor(lambda w, x: x.sum(axis=1) * w, length_buckets=(4, 8))
        >>> lengths = [3, 7]
        >>> def build(chunk):
        ...     x = np.zeros((chunk.rows, chunk.length), np.float32)
        ...     for r, i in enumerate(chunk.index):
        ...         x[r, : lengths[i]] = 1.0
        ...     return (x,), f"x[{chunk.rows}, {chunk.length}]"
        >>> ex.run(lengths, build, (np.float32(2.0),), np.zeros(2, np.float32)).tolist()
        [6.0, 14.0]
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        length_buckets: Sequence[int] = LENGTH_BUCKETS,
        row_buckets: Sequence[int] = ROW_BUCKETS,
        max_tokens: int | None = None,
        dispatch_tokens: float = 32.0,
    ) -> None:
        enable_compile_cache()
        self.jitted = jax.jit(fn)
        self.length_buckets = tuple(sorted(length_buckets))
        self.row_buckets = tuple(sorted(row_buckets))
        self.max_tokens = max_tokens
        self.dispatch_tokens = float(dispatch_tokens)
        self.stats = ExecStats()
        self._compiled: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        # How lengths become chunks; replaceable (tools/bench_infer.py times the coarse plan).
        self.planner: Callable[[Sequence[int], int | None], list[Chunk]] = self.plan

    @property
    def compile_count(self) -> int:
        """Number of compiled executables; constant once warm."""
        return len(self._compiled)

    def plan(self, lengths: Sequence[int], max_rows: int | None = None) -> list[Chunk]:
        """:func:`plan_chunks` with this executor's grids (rows cut at ``max_rows``).

        Example:
            >>> BucketedExecutor(abs, length_buckets=(8,)).plan([3, 5], max_rows=4)[0].rows
            2
        """
        rows = self.row_buckets if max_rows is None else bucket_grid(self.row_buckets, max_rows)
        return plan_chunks(
            lengths,
            length_buckets=self.length_buckets,
            row_buckets=rows,
            max_tokens=self.max_tokens,
            dispatch_tokens=self.dispatch_tokens,
        )

    def executable(self, constants: tuple, args: tuple, label: str) -> Any:
        """The compiled function for these arguments' shapes, compiled now if the shape of
        ``args`` is new (``constants`` keep one shape for the executor's life, so they are not
        part of the cache key).

        Example:
            >>> ex = BucketedExecutor(lambda w, x: x * w)
            >>> _ = ex.executable((np.float32(2.0),), (np.zeros(3),), "x[3]")
            >>> ex.compile_count, ex.stats.shapes
            (1, ['x[3]'])
        """
        key = _shape_key(args)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:  # concurrent callers compile a shape once
                compiled = self._compiled.get(key)
                if compiled is None:
                    start = time.perf_counter()
                    compiled = self.jitted.lower(*constants, *args).compile()
                    self.stats.compile_s += time.perf_counter() - start
                    self.stats.compiles += 1
                    self.stats.shapes.append(label)
                    self._compiled[key] = compiled
        return compiled

    def run(
        self,
        lengths: Sequence[int] | None,
        build: Callable[[Chunk], tuple[tuple, str]],
        constants: tuple,
        out: np.ndarray,
        *,
        count: int | None = None,
        max_rows: int | None = None,
    ) -> np.ndarray:
        """Run every prompt through the compiled function and write row ``i`` of the result to
        ``out[i]``. ``lengths`` are the prompts' token counts; ``None`` for inputs without a
        sequence axis (then ``count`` prompts are planned by rows alone). ``build(chunk)`` returns
        the chunk's arguments (padded to ``chunk.rows`` x ``chunk.length``) and a shape label for
        :attr:`stats`.
        """
        t0 = time.perf_counter()
        compile_before = self.stats.compile_s
        if lengths is None:
            n = int(count or 0)
            plan = self.planner(np.ones(n, np.int64), max_rows) if n else []
        else:
            n = len(lengths)
            plan = self.planner(lengths, max_rows)
            self.stats.tokens += int(np.sum(lengths))
            self.stats.padded_tokens += sum(c.rows * c.length for c in plan)
        host = 0.0
        pending = []
        for chunk in plan:
            t1 = time.perf_counter()
            args, label = build(chunk)
            host += time.perf_counter() - t1
            # Dispatch is asynchronous: building the next chunk overlaps this one's compute.
            pending.append((chunk, self.executable(constants, args, label)(*constants, *args)))
            self.stats.calls += 1
        for chunk, result in pending:
            out[chunk.index] = np.asarray(jax.device_get(result))[: len(chunk.index)]
        total = time.perf_counter() - t0
        self.stats.prompts += n
        self.stats.featurize_s += host
        self.stats.steady_s += max(0.0, total - host - (self.stats.compile_s - compile_before))
        return out

    def reset_stats(self) -> None:
        """Zero the counters; compiled shapes are kept, so later calls stay warm."""
        self.stats = ExecStats()
