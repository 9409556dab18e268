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
  turns a later process's compile of the same shape into a read from disk, and an executor given
  an ``identity`` also keeps each compiled shape itself (:class:`ExecutableStore`), so a later
  process skips tracing and lowering too;
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
import functools
import hashlib
import logging
import os
import pickle
import platform
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jaxlib
import numpy as np

from routellm_jax import paths

log = logging.getLogger(__name__)

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
_own_cache: Path | None = None  # the project's folder, when it is the one JAX's cache uses


def enable_compile_cache() -> str | None:
    """Point JAX's persistent compilation cache at :func:`routellm_jax.paths.compile_cache_dir`
    (once per process) and return the folder in use, or ``None`` when there is none.

    A folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``, ``jax.config``) is kept
    with its settings; so are ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` and
    ``JAX_COMPILATION_CACHE_MAX_SIZE`` when set. ``ROUTELLM_JAX_COMPILE_CACHE=off`` (or a folder
    that cannot be written) leaves JAX's configuration alone.
    """
    global _cache_configured, _own_cache
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
            if folder is not None and jax.config.jax_compilation_cache_dir == str(folder):
                _own_cache = folder
        return jax.config.jax_compilation_cache_dir or None


_MODELS_DIR = Path(__file__).resolve().parent
_bypass_lock = threading.Lock()  # one compile outside JAX's persistent cache at a time
_unstorable: set[Path] = set()  # store entries whose executable failed the round trip


@functools.cache
def _cpu_flags() -> str:
    """The host CPU's feature flags: XLA:CPU compiles for the CPU it runs on, so an executable
    built on one machine must not be taken for another's (a shared home folder)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + " " + platform.processor()


def _source_digest(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for file in sorted({Path(f).resolve() for f in files}):
        digest.update(str(file.name).encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


@functools.cache
def _models_digest() -> str:
    """The package's own ``models`` sources, hashed once per process (a router load builds a
    store each time; the code this process runs does not change under it)."""
    return _source_digest(list(_MODELS_DIR.rglob("*.py")))


class ExecutableStore:
    """One function's compiled executables kept on disk between processes.

    JAX's persistent cache (:func:`enable_compile_cache`) saves the compile of a shape a process
    has seen before, but every process still traces and lowers the function to find its cache
    key; for a 6-layer encoder in flax that is most of a route command's first call. This store
    keeps the compiled executable itself (``jax.experimental.serialize_executable``), under a key
    made of everything the executable depends on, so a hit skips tracing, lowering and compiling:

    * ``identity``: the caller's description of the function (architecture, configs, precision);
    * the source of every file the traced code comes from (this package's ``models`` folder and
      the caller's ``source_files``: a plug-in architecture's module), so editing the code
      misses the store instead of running stale code;
    * JAX, jaxlib and flax versions, the backend, its devices and the host CPU's feature flags,
      ``XLA_FLAGS`` and the x64 setting;
    * the pytree structure, shapes and dtypes of the constants and of the arguments.

    A new entry is only written after a round trip: the serialized executable is loaded back and
    run on the arguments that compiled it, and must give the same bits as the original (an
    executable XLA took from its own persistent cache does not serialize completely, so entries
    are compiled with that cache bypassed). A file that fails to load (truncated, from another
    XLA, rejected by XLA) is logged, removed, and the shape compiled again; a store that cannot
    be written is skipped. Files are pickles that XLA runs: like JAX's cache, the folder must be
    one only its user writes to (:func:`routellm_jax.paths.compile_cache_dir`).
    """

    def __init__(self, folder: Path, identity: str, source_files: Sequence[Path] = ()) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.writes = 0
        import flax  # version only; flax is loaded by every encoder module anyway

        backend = jax.devices()[0]
        parts = [
            identity,
            _models_digest(),
            _source_digest(source_files),
            jax.__version__,
            jaxlib.__version__,
            flax.__version__,
            backend.platform,
            backend.client.platform_version,
            backend.device_kind,
            str(len(jax.devices())),
            _cpu_flags() if backend.platform == "cpu" else "",
            os.environ.get("XLA_FLAGS", ""),
            str(jax.config.jax_enable_x64),
        ]
        self.prefix = hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def path(self, constants: tuple, args: tuple) -> Path:
        """The file of the executable for these constants and arguments."""
        shapes = repr((_shape_key(constants), _shape_key(args)))
        digest = hashlib.sha256((self.prefix + shapes).encode()).hexdigest()
        return self.folder / f"{digest[:40]}.exe"

    def load(self, constants: tuple, args: tuple) -> Any | None:
        """The stored executable for these shapes, or ``None``."""
        from jax.experimental import serialize_executable  # loaded only when the store is used

        path = self.path(constants, args)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        try:
            serialized, in_tree, out_tree, device_ids = pickle.loads(blob)
            by_id = {d.id: d for d in jax.devices()}
            compiled = serialize_executable.deserialize_and_load(
                serialized, in_tree, out_tree, execution_devices=[by_id[i] for i in device_ids]
            )
        except Exception as err:  # noqa: BLE001 - any unreadable entry is recompiled, not fatal
            log.warning(
                "compiled executable %s could not be loaded (%s): compiling again", path, err
            )
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return compiled

    def compile_and_store(self, jitted: Any, constants: tuple, args: tuple) -> Any:
        """Compile outside JAX's persistent cache, check the round trip, write the entry."""
        from jax._src import config as jax_config  # the thread-local form of the cache switch
        from jax.experimental import serialize_executable
        from jax.experimental.compilation_cache import compilation_cache

        path = self.path(constants, args)
        if path in _unstorable:  # failed its round trip in this process: do not pay for it again
            return jitted.lower(*constants, *args).compile()
        # JAX decides once per process whether its cache is in use; reset_cache makes it decide
        # again, under the switch, for this compile, and again afterwards for everyone else's.
        # (Another thread compiling meanwhile may read the cache or miss it once; an entry this
        # compile takes from the cache anyway fails the round trip below and is not stored.)
        with _bypass_lock, jax_config.enable_compilation_cache(False):
            compilation_cache.reset_cache()
            try:
                compiled = jitted.lower(*constants, *args).compile()
            finally:
                compilation_cache.reset_cache()
        try:
            serialized, in_tree, out_tree = serialize_executable.serialize(compiled)
            # The devices it runs on (one for an unsharded function): loading it elsewhere
            # would ask for one shard per device of the backend.
            devices = sorted(
                {d for s in jax.tree.leaves(compiled.input_shardings) for d in s.device_set},
                key=lambda d: d.id,
            )
            reloaded = serialize_executable.deserialize_and_load(
                serialized, in_tree, out_tree, execution_devices=devices
            )
            same = jax.tree.map(
                lambda a, b: np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True),
                compiled(*constants, *args),
                reloaded(*constants, *args),
            )
            if not all(jax.tree.leaves(same)):
                raise ValueError("the reloaded executable gives other results")
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(pickle.dumps((serialized, in_tree, out_tree, [d.id for d in devices])))
            os.replace(tmp, path)
            self.writes += 1
        except Exception as err:  # noqa: BLE001 - a store that cannot be written is skipped
            # Typically the process compiled this function before through JAX's persistent
            # cache, and JAX's in-memory cache handed back that executable, which does not
            # serialize completely ("Function ... not found" when the copy runs).
            _unstorable.add(path)
            log.warning("compiled executable not stored in %s (%s)", self.folder, err)
        return compiled


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
        identity: str | None = None,
        source_files: Sequence[Path] = (),
    ) -> None:
        enable_compile_cache()
        self.jitted = jax.jit(fn)
        # Compiled shapes kept on disk: only for a caller that says what ``fn`` is, and only
        # where the cache folder is this project's own (a folder the user gave JAX is theirs).
        self.store = (
            ExecutableStore(_own_cache / "executables", identity, source_files)
            if identity is not None and _own_cache is not None
            else None
        )
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
                    compiled = self.store.load(constants, args) if self.store else None
                    if compiled is None and self.store is not None:
                        compiled = self.store.compile_and_store(self.jitted, constants, args)
                    elif compiled is None:
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
