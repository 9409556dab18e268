"""The input pipeline: grain over an architecture's examples, sharded by process, checkpointable.

An architecture turns records into a dict of arrays (``examples_from_records``), each with leading
dimension = number of examples and a fixed trailing shape (padding/bucketing already done there),
so every batch has the same shapes and the train step compiles once. This module draws batches of
example *indices* with grain (``MapDataset.range(n).shuffle(seed).repeat().batch(global)``: an
epoch-aware reshuffle every pass), and each process gathers only its slice of every global batch
(rows ``[p * local, (p + 1) * local)``), so

* the global batch sequence depends only on the seed and the global batch size, not on the
  number of processes or devices (a 2-process run sees the batches a 1-process run sees);
* the iterator state is grain's (``{"next_index": k}`` per process), saved with the checkpoint,
  so a resumed run continues with exactly the batch it would have seen next.

Example:
    >>> ex = {"x": np.arange(10, dtype=np.float32)[:, None], "y": np.arange(10)}
    >>> it = BatchIterator(ex, global_batch_size=4, seed=0)
    >>> next(it)["x"].shape
    (4, 1)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


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


def index_dataset(
    n: int,
    global_batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    repeat: bool = True,
    process_index: int = 0,
    process_count: int = 1,
) -> Any:
    """A grain ``IterDataset`` of this process's index slices of each global batch.

    Example:
        >>> next(iter(index_dataset(10, 4, shuffle=False))).tolist()
        [0, 1, 2, 3]
    """
    import grain

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
    ds = grain.MapDataset.range(n)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if repeat:
        ds = ds.repeat()  # after shuffle: grain reshuffles every epoch
    ds = ds.batch(global_batch_size, drop_remainder=True)
    ds = ds.map(lambda idx: np.asarray(idx)[lo:hi])
    # Elements are small index arrays: one reader thread and a short buffer suffice (grain's
    # default of 16 threads x 500 elements only costs start-up time on a busy host).
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=8))


class BatchIterator(Iterator[dict[str, Any]]):
    """Global batches (``jax.Array`` with ``sharding``, or host numpy without) over ``examples``.

    ``get_state()``/``set_state()`` expose grain's iterator state; ``grain_iterator`` is what
    ``grain.checkpoint.CheckpointSave`` takes.

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
    ) -> None:
        import jax

        self.examples = {k: np.asarray(v) for k, v in examples.items()}
        self.n = num_examples(self.examples)
        self.global_batch_size = int(global_batch_size)
        self.sharding = sharding
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
        )
        self.grain_iterator = iter(self.dataset)
        self.batches_per_epoch = self.n // self.global_batch_size

    def __next__(self) -> dict[str, Any]:
        idx = next(self.grain_iterator)
        local = {k: v[idx] for k, v in self.examples.items()}
        if self.sharding is None:
            return local
        import jax

        return {
            k: jax.make_array_from_process_local_data(
                self.sharding, v, (self.global_batch_size, *v.shape[1:])
            )
            for k, v in local.items()
        }

    def get_state(self) -> dict[str, Any]:
        return self.grain_iterator.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.grain_iterator.set_state(state)
