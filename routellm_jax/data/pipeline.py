"""The input pipeline: grain over an architecture's examples, sharded by process, checkpointable.

An architecture turns records into a dict of arrays (``examples_from_records``), each with leading
dimension = number of examples and a fixed trailing shape (padding/bucketing already done there),
so every batch has the same shapes and the train step compiles once. This module draws batches of
example *indices* with grain (a random-access source of global batches, :class:`ShuffledBatches`:
the stream of per-epoch seeded permutations cut into batches, a new order every pass), and each
process gathers only its slice of every global batch (rows ``[p * local, (p + 1) * local)``), so

* the global batch sequence depends only on the seed and the global batch size, not on the
  number of processes or devices (a 2-process run sees the batches a 1-process run sees);
* the iterator state is grain's (``{"next_index": k}`` per process), saved with the checkpoint,
  so a resumed run continues with exactly the batch it would have seen next.

Length buckets (``length_buckets``, for token-sequence examples): arrays are padded to the
architecture's ``max_length``, but most prompts are far shorter (median 26 MiniLM tokens against a
128-token pad), so a step over full-width rows spends most of its FLOPs on padding. With buckets,
each global batch is cut to the smallest bucket that holds its longest row (right padding, so
the cut drops only pad columns and the loss is unchanged), and batches are drawn from windows of
``window_batches`` shuffled batches sorted by length (:class:`LengthGroupedBatches`), so a batch
holds rows of similar length. The train step then compiles once per bucket, never more, and the
batch sequence is still a pure function of (seed, global batch size), with grain's state.

Blocks and device-resident examples: the trainer can run several steps per dispatch. It then takes
``k`` batches at once (:meth:`BatchIterator.next_block`, ``[k, global batch, ...]``), or, when the
examples fit a device-memory budget, only their indices (:meth:`BatchIterator.next_index_block`)
and gathers the rows on the device from :func:`device_examples` (placed once, repeated rows
stored once) with :func:`gather_rows`. Either way grain draws the same indices, so the batches,
the iterator state and a resumed run are the same as one batch per call.

Example:
    >>> ex = {"x": np.arange(10, dtype=np.float32)[:, None], "y": np.arange(10)}
    >>> it = BatchIterator(ex, global_batch_size=4, seed=0)
    >>> next(it)["x"].shape
    (4, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec


def num_examples(examples: Mapping[str, np.ndarray]) -> int:
    """The shared leading dimension of an examples dict (checked).

    Example:
        >>> num_examples({"a": np.zeros((3, 2)), "b": np.zeros(3)})
        3
    """
    if not examples:
        raise ValueError("examples: empty dict (the architecture produced no arrays)")
    sizes = {k: int(np.shape(v)[0]) for k, v in examples.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"examples: arrays disagree on the number of examples: {sizes}")
    return next(iter(sizes.values()))


def split_holdout(
    examples: Mapping[str, np.ndarray], fraction: float, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split examples into (train, held-out) by a seeded permutation of example indices.

    Example:
        >>> tr, ho = split_holdout({"a": np.arange(10)}, 0.2, seed=0)
        >>> len(tr["a"]), len(ho["a"])
        (8, 2)
    """
    n = num_examples(examples)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    n_hold = int(round(n * fraction))
    perm = np.random.default_rng(seed).permutation(n)
    hold, train = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return (
        {k: np.asarray(v)[train] for k, v in examples.items()},
        {k: np.asarray(v)[hold] for k, v in examples.items()},
    )


def row_lengths(mask: np.ndarray) -> np.ndarray:
    """Length of each right-padded row: index of the last nonzero entry + 1 (0 for empty rows).

    Example:
        >>> row_lengths(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])).tolist()
        [2, 3, 0]
    """
    mask = np.asarray(mask) != 0
    if mask.ndim != 2:
        raise ValueError(f"row_lengths: expected a [rows, length] mask, got shape {mask.shape}")
    last = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    return np.where(mask.any(axis=1), last, 0).astype(np.int64)


def bucket_length(longest: int, buckets: Sequence[int], full: int) -> int:
    """The smallest bucket >= ``longest``; ``full`` (the padded width) when none is.

    Example:
        >>> [bucket_length(n, (32, 64), 128) for n in (1, 32, 33, 100)]
        [32, 32, 64, 128]
    """
    for b in sorted(int(b) for b in buckets):
        if b >= longest:
            return min(b, full)
    return full


class LengthGroupedBatches(Sequence[np.ndarray]):
    """Global batches of example indices, rows of similar length together, as a random-access
    sequence (so grain's ``MapDataset.source`` and its ``next_index`` state apply unchanged).

    Epoch ``e`` is a seeded permutation of the examples cut into windows of ``window_batches``
    batches; a window is sorted by length (stable), split into batches, and the batches are
    visited in a seeded order. Every example appears once per epoch except the < one window
    left over, which differs from epoch to epoch. Without ``shuffle`` the order is the
    examples' own (windows still sorted by length).

    Example:
        >>> lengths = np.array([5, 1, 4, 2, 3, 6, 8, 7])
        >>> b = LengthGroupedBatches(lengths, 2, window_batches=4)
        >>> sorted(lengths[b[i]].tolist() for i in range(4))  # one epoch: neighbours in length
        [[1, 2], [3, 4], [5, 6], [7, 8]]
    """

    def __init__(
        self,
        lengths: np.ndarray,
        global_batch_size: int,
        *,
        window_batches: int = 16,
        seed: int = 0,
        shuffle: bool = True,
        repeat: bool = True,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = int(global_batch_size)
        n = len(self.lengths)
        if n < self.batch_size:
            raise ValueError(
                f"only {n} examples for a global batch of {self.batch_size} (drop_remainder)"
            )
        self.window_batches = max(1, min(int(window_batches), n // self.batch_size))
        self.window = self.window_batches * self.batch_size
        self.batches_per_epoch = (n // self.window) * self.window_batches
        self.seed, self.shuffle, self.repeat = int(seed), bool(shuffle), bool(repeat)
        self._epoch: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        # "Endless" when repeating: grain only ever asks for the next index.
        return self.batches_per_epoch * (2**40 if self.repeat else 1)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            n = len(self.lengths)
            perm = (
                np.random.default_rng([self.seed, epoch]).permutation(n)
                if self.shuffle
                else np.arange(n)
            )
            self._epoch = (epoch, perm)
        return self._epoch[1]

    def __getitem__(self, j: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= j < len(self):
            raise IndexError(j)
        epoch, r = divmod(int(j), self.batches_per_epoch)
        w, b = divmod(r, self.window_batches)
        members = self._permutation(epoch)[w * self.window : (w + 1) * self.window]
        ordered = members[np.argsort(self.lengths[members], kind="stable")]
        batches = ordered.reshape(self.window_batches, self.batch_size)
        if self.shuffle:  # otherwise every window would run from short to long rows
            visit = np.random.default_rng([self.seed, epoch, w]).permutation(self.window_batches)
            b = int(visit[b])
        return batches[b]


class ShuffledBatches(Sequence[np.ndarray]):
    """Global batches of example indices as a random-access sequence: epoch ``e`` is the seeded
    permutation ``default_rng([seed, e]).permutation(n)`` (the identity without ``shuffle``), the
    epochs are concatenated and the stream is cut into batches, so every example appears once
    per epoch and a batch may span two epochs. Without ``repeat``: one epoch, remainder dropped.

    Example:
        >>> b = ShuffledBatches(10, 4, shuffle=False)
        >>> b[0].tolist(), b[2].tolist()  # the third batch spans epochs 0 and 1
        ([0, 1, 2, 3], [8, 9, 0, 1])
        >>> len(ShuffledBatches(10, 4, repeat=False))
        2
    """

    def __init__(
        self,
        n: int,
        global_batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        repeat: bool = True,
    ) -> None:
        self.n, self.batch_size = int(n), int(global_batch_size)
        if self.n < self.batch_size:
            raise ValueError(
                f"only {self.n} examples for a global batch of {self.batch_size} (drop_remainder)"
            )
        self.seed, self.shuffle, self.repeat = int(seed), bool(shuffle), bool(repeat)
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        # "Endless" when repeating: grain only ever asks for the next index.
        return (self.n * (2**40 if self.repeat else 1)) // self.batch_size

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs
                self._perms.pop(min(self._perms))
            self._perms[epoch] = (
                np.random.default_rng([self.seed, epoch]).permutation(self.n)
                if self.shuffle
                else np.arange(self.n)
            )
        return self._perms[epoch]

    def __getitem__(self, j: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= j < len(self):
            raise IndexError(j)
        start = int(j) * self.batch_size
        epoch, lo = divmod(start, self.n)
        hi = lo + self.batch_size
        if hi <= self.n:
            return self._permutation(epoch)[lo:hi]
        head = self._permutation(epoch)[lo:]
        return np.concatenate([head, self._permutation(epoch + 1)[: hi - self.n]])


def index_dataset(
    n: int,
    global_batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    repeat: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    lengths: np.ndarray | None = None,
    window_batches: int = 16,
) -> Any:
    """A grain ``IterDataset`` of this process's index slices of each global batch.

    With ``lengths`` (one per example) the global batches come from
    :class:`LengthGroupedBatches`, and each element is ``(local indices, longest row of the
    global batch)``, so every process cuts its rows to the same bucket.

    Example:
        >>> next(iter(index_dataset(10, 4, shuffle=False))).tolist()
        [0, 1, 2, 3]
    """
    import grain  # local: grain loads slowly, and only the training input path needs it

    if global_batch_size % process_count:
        raise ValueError(
            f"global batch size {global_batch_size} not divisible by {process_count} processes"
        )
    if n < global_batch_size:
        raise ValueError(
            f"only {n} examples for a global batch of {global_batch_size} (drop_remainder)"
        )
    local = global_batch_size // process_count
    lo, hi = process_index * local, (process_index + 1) * local
    # Elements are small index arrays: one reader thread and a short buffer suffice (grain's
    # default of 16 threads x 500 elements only costs start-up time on a busy host).
    read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=8)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if len(lengths) != n:
            raise ValueError(f"lengths: {len(lengths)} entries for {n} examples")
        batches = LengthGroupedBatches(
            lengths,
            global_batch_size,
            window_batches=window_batches,
            seed=seed,
            shuffle=shuffle,
            repeat=repeat,
        )
        grouped = grain.MapDataset.source(batches).map(
            lambda idx: (np.asarray(idx)[lo:hi], int(lengths[idx].max()))
        )
        return grouped.to_iter_dataset(read)
    # One source element per global batch: grain's element-wise shuffle + batch cost a Python
    # round trip per example, which dominated small routers' steps.
    batches = ShuffledBatches(n, global_batch_size, seed=seed, shuffle=shuffle, repeat=repeat)
    ds = grain.MapDataset.source(batches).map(lambda idx: idx[lo:hi])
    return ds.to_iter_dataset(read)


class BatchIterator(Iterator[dict[str, Any]]):
    """Global batches (``jax.Array`` with ``sharding``, or host numpy without) over ``examples``.

    ``get_state()``/``set_state()`` expose grain's iterator state; ``grain_iterator`` is what
    ``grain.checkpoint.CheckpointSave`` takes.

    ``length_buckets`` (with ``sequence_keys``, the right-padded ``[n, max_length]`` arrays, and
    ``mask_key``, the one whose nonzero entries are the real tokens) groups rows of similar length
    (``window_batches`` batches per sorting window; 1 = no grouping, e.g. for evaluation) and cuts
    each batch's sequence arrays to the smallest bucket that holds its longest row.

    Example:
        >>> it = BatchIterator({"a": np.arange(8)}, 4, seed=1)
        >>> s = it.get_state(); b1 = next(it)["a"]; it.set_state(s)
        >>> bool((next(it)["a"] == b1).all())
        True
    """

    def __init__(
        self,
        examples: Mapping[str, np.ndarray],
        global_batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        repeat: bool = True,
        sharding: Any = None,
        process_index: int | None = None,
        process_count: int | None = None,
        length_buckets: Sequence[int] = (),
        sequence_keys: Sequence[str] = (),
        mask_key: str = "",
        window_batches: int = 16,
    ) -> None:
        self.examples = {k: np.asarray(v) for k, v in examples.items()}
        self.n = num_examples(self.examples)
        self.global_batch_size = int(global_batch_size)
        self.sharding = sharding
        self.length_buckets = tuple(int(b) for b in length_buckets)
        self.sequence_keys = tuple(sequence_keys)
        lengths = None
        if self.length_buckets:
            missing = sorted({*self.sequence_keys, mask_key} - set(self.examples))
            if not self.sequence_keys or not mask_key or missing:
                raise ValueError(
                    "length_buckets need sequence_keys and a mask_key among the example arrays "
                    f"{sorted(self.examples)}; got sequence_keys={list(self.sequence_keys)}, "
                    f"mask_key={mask_key!r} (missing: {missing})"
                )
            widths = {k: self.examples[k].shape[1:2] for k in self.sequence_keys}
            if len(set(widths.values())) != 1:
                raise ValueError(f"sequence_keys disagree on the padded width: {widths}")
            self.full_length = int(self.examples[self.sequence_keys[0]].shape[1])
            lengths = row_lengths(self.examples[mask_key])
        pi = jax.process_index() if process_index is None else process_index
        pc = jax.process_count() if process_count is None else process_count
        self.dataset = index_dataset(
            self.n,
            self.global_batch_size,
            seed=seed,
            shuffle=shuffle,
            repeat=repeat,
            process_index=pi,
            process_count=pc,
            lengths=lengths,
            window_batches=window_batches,
        )
        self.grain_iterator = iter(self.dataset)
        self.batches_per_epoch = self.n // self.global_batch_size

    def __next__(self) -> dict[str, Any]:
        item = next(self.grain_iterator)
        if self.length_buckets:
            idx, longest = item
            cut = bucket_length(longest, self.length_buckets, self.full_length)
            local = {
                k: v[idx][:, :cut] if k in self.sequence_keys else v[idx]
                for k, v in self.examples.items()
            }
        else:
            local = {k: v[item] for k, v in self.examples.items()}
        if self.sharding is None:
            return local
        return {
            k: jax.make_array_from_process_local_data(
                self.sharding, v, (self.global_batch_size, *v.shape[1:])
            )
            for k, v in local.items()
        }

    def next_index(self) -> np.ndarray:
        """This process's example indices of the next global batch (no rows gathered)."""
        if self.length_buckets:
            raise ValueError("length-bucketed batches have varying widths: use next(iterator)")
        return np.asarray(next(self.grain_iterator))

    def next_index_block(self, k: int) -> Any:
        """Indices of the next ``k`` global batches, ``[k, global batch]`` int32, placed with
        :func:`block_sharding` (host numpy without a sharding): what :func:`gather_rows` takes."""
        idx = np.stack([self.next_index() for _ in range(k)]).astype(np.int32)
        return self._place_block({"index": idx})["index"]

    def next_block(self, k: int) -> dict[str, Any]:
        """The next ``k`` global batches stacked, ``[k, global batch, ...]`` per key, placed with
        :func:`block_sharding` (host numpy without a sharding)."""
        idx = np.stack([self.next_index() for _ in range(k)])
        return self._place_block({key: v[idx] for key, v in self.examples.items()})

    def _place_block(self, local: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.sharding is None:
            return local
        sharding = block_sharding(self.sharding)
        return {
            k: jax.make_array_from_process_local_data(
                sharding, v, (v.shape[0], self.global_batch_size, *v.shape[2:])
            )
            for k, v in local.items()
        }

    def get_state(self) -> dict[str, Any]:
        return self.grain_iterator.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.grain_iterator.set_state(state)


def block_sharding(batch_sharding: NamedSharding) -> NamedSharding:
    """``batch_sharding`` with a leading, unsplit block axis: ``[k, batch, ...]`` arrays of ``k``
    batches, each split like a single batch.

    Example:
        >>> mesh = jax.make_mesh((1,), ("data",))
        >>> block_sharding(NamedSharding(mesh, PartitionSpec("data"))).spec
        P(None, 'data')
    """
    return NamedSharding(batch_sharding.mesh, PartitionSpec(None, *batch_sharding.spec))


@dataclasses.dataclass
class DeviceExamples:
    """Examples placed on the devices once (replicated: every device gathers its own rows of a
    batch locally, with no collective). ``arrays[k]`` holds the distinct rows of example array
    ``k``; ``rows[k]`` (only for arrays stored deduplicated) maps an example to its row."""

    arrays: dict[str, jax.Array]
    rows: dict[str, jax.Array]
    nbytes: int

    def tree(self) -> dict[str, dict[str, jax.Array]]:
        """The pytree :func:`gather_rows` takes (an argument of the jitted step)."""
        return {"arrays": self.arrays, "rows": self.rows}


def _dedup(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(distinct rows, example -> row)`` when storing the distinct rows of ``v`` at least
    halves it (bitwise equality, so a gathered row is the original's exact bits); else None."""
    if v.ndim < 2 or v.shape[0] < 2:
        return None
    flat = np.ascontiguousarray(v).reshape(v.shape[0], -1)
    keys = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))[:, 0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if 2 * len(first) > v.shape[0]:
        return None
    return v[first], inverse.astype(np.int32).reshape(-1)


def device_examples(
    examples: Mapping[str, np.ndarray], sharding: NamedSharding, budget_bytes: int
) -> DeviceExamples | None:
    """``examples`` on ``sharding``'s devices (replicated), repeated rows of an array (e.g. one
    prompt embedding per battle of that prompt) stored once; None when they need more than
    ``budget_bytes`` per device (or the budget is 0), so the caller streams batches instead.

    Example:
        >>> mesh = jax.make_mesh((1,), ("data",))
        >>> ex = {"e": np.repeat(np.eye(3, dtype=np.float32), 4, axis=0), "y": np.arange(12)}
        >>> d = device_examples(ex, NamedSharding(mesh, PartitionSpec("data")), 1 << 20)
        >>> d.arrays["e"].shape, sorted(d.rows)
        ((3, 3), ['e'])
        >>> batch = gather_rows(d.tree(), np.array([0, 5, 11]))
        >>> bool((np.asarray(batch["e"]) == ex["e"][[0, 5, 11]]).all())
        True
    """
    if budget_bytes <= 0:
        return None
    arrays: dict[str, np.ndarray] = {}
    rows: dict[str, np.ndarray] = {}
    for k, v in examples.items():
        v = np.asarray(v)
        found = _dedup(v)
        if found is None:
            arrays[k] = v
        else:
            arrays[k], rows[k] = found
    nbytes = sum(a.nbytes for a in arrays.values()) + sum(r.nbytes for r in rows.values())
    if nbytes > budget_bytes:
        return None
    repl = NamedSharding(sharding.mesh, PartitionSpec())

    def place(a: np.ndarray) -> jax.Array:
        # From a callback: every process holds the whole array, so this works across processes.
        return jax.make_array_from_callback(a.shape, repl, lambda index: a[index])

    return DeviceExamples(
        arrays={k: place(a) for k, a in arrays.items()},
        rows={k: place(r) for k, r in rows.items()},
        nbytes=int(nbytes),
    )


def gather_rows(data: Mapping[str, Mapping[str, jax.Array]], index: jax.Array) -> dict[str, Any]:
    """The batch of examples ``index`` from :meth:`DeviceExamples.tree` (inside a jitted step)."""
    arrays, rows = data["arrays"], data["rows"]
    return {k: v[rows[k][index]] if k in rows else v[index] for k, v in arrays.items()}
