"""The grain input pipeline: seeded epochs, exact resumption, per-process shards of one batch."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.data.pipeline import (
    BatchIterator,
    ShuffledBatches,
    index_dataset,
    num_examples,
    split_holdout,
)


def _examples(n=20):
    return {
        "x": np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
        "id": np.arange(n),
    }


def test_epochs_cover_every_example_once_and_reshuffle():
    it = BatchIterator(_examples(), global_batch_size=5, seed=3)
    epoch1 = np.concatenate([next(it)["id"] for _ in range(4)])
    epoch2 = np.concatenate([next(it)["id"] for _ in range(4)])
    assert sorted(epoch1) == list(range(20)) and sorted(epoch2) == list(range(20))
    assert epoch1.tolist() != epoch2.tolist()  # a new order each epoch
    again = BatchIterator(_examples(), global_batch_size=5, seed=3)
    assert np.concatenate([next(again)["id"] for _ in range(4)]).tolist() == epoch1.tolist()
    other = BatchIterator(_examples(), global_batch_size=5, seed=4)
    assert np.concatenate([next(other)["id"] for _ in range(4)]).tolist() != epoch1.tolist()


def test_restored_state_continues_with_the_same_batches():
    it = BatchIterator(_examples(), global_batch_size=6, seed=0)
    for _ in range(5):  # past an epoch boundary (drop_remainder: 3 batches per epoch)
        next(it)
    state = it.get_state()
    expected = [next(it)["id"].tolist() for _ in range(4)]
    fresh = BatchIterator(_examples(), global_batch_size=6, seed=0)
    fresh.set_state(state)
    assert [next(fresh)["id"].tolist() for _ in range(4)] == expected


def test_shuffled_batches_cut_the_stream_of_epoch_permutations_in_any_access_order():
    b = ShuffledBatches(10, 4, seed=7)
    stream = np.concatenate([np.random.default_rng([7, e]).permutation(10) for e in range(4)])
    expected = [stream[4 * j : 4 * j + 4].tolist() for j in range(10)]
    assert [b[j].tolist() for j in range(10)] == expected
    # Random access (a restored iterator jumps) gives the same batches as the sequential pass.
    fresh = ShuffledBatches(10, 4, seed=7)
    assert [fresh[j].tolist() for j in (9, 2, 7, 0, 5)] == [expected[j] for j in (9, 2, 7, 0, 5)]
    assert len(ShuffledBatches(10, 4, repeat=False)) == 2
    with pytest.raises(ValueError, match="only 3 examples"):
        ShuffledBatches(3, 4)


def test_process_shards_partition_the_global_batch():
    whole = iter(index_dataset(20, 8, seed=1))
    parts = [iter(index_dataset(20, 8, seed=1, process_index=p, process_count=4)) for p in range(4)]
    for _ in range(5):
        glob = next(whole)
        local = [next(p) for p in parts]
        assert all(len(x) == 2 for x in local)
        assert np.concatenate(local).tolist() == glob.tolist()
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        index_dataset(20, 8, process_index=0, process_count=3)


def test_eval_iterator_is_ordered_and_finite():
    it = BatchIterator(_examples(10), 4, shuffle=False, repeat=False)
    assert [b["id"].tolist() for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_holdout_split_is_seeded_and_disjoint():
    train, hold = split_holdout(_examples(), 0.25, seed=0)
    assert num_examples(train) == 15 and num_examples(hold) == 5
    assert not set(train["id"]) & set(hold["id"])
    assert split_holdout(_examples(), 0.25, seed=0)[1]["id"].tolist() == hold["id"].tolist()
    with pytest.raises(ValueError, match="disagree"):
        num_examples({"a": np.zeros(3), "b": np.zeros(4)})


def _token_examples(n=64, width=32, seed=0):
    """Right-padded token rows of random lengths 1..width, pad id 0."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, width + 1, size=n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int32)
    ids = rng.integers(1, 1000, size=(n, width)).astype(np.int32) * mask
    return {"input_ids": ids, "attention_mask": mask, "id": np.arange(n)}, lengths


BUCKETED = dict(
    length_buckets=(8, 16),
    sequence_keys=("input_ids", "attention_mask"),
    mask_key="attention_mask",
)


def test_length_buckets_cut_only_padding_and_group_similar_lengths():
    ex, lengths = _token_examples()
    it = BatchIterator(ex, 8, seed=0, window_batches=4, **BUCKETED)
    widths, spreads, epoch = [], [], []
    for _ in range(it.n // 32 * 4):  # one epoch: 2 windows of 4 batches
        batch = next(it)
        width = batch["input_ids"].shape[1]
        rows = batch["id"]
        longest = lengths[rows].max()
        assert width == (8 if longest <= 8 else 16 if longest <= 16 else 32)  # the full width
        np.testing.assert_array_equal(batch["input_ids"], ex["input_ids"][rows, :width])
        assert not ex["attention_mask"][rows, width:].any()  # only padding was cut
        widths.append(width)
        spreads.append(np.ptp(lengths[rows]))
        epoch.extend(rows.tolist())
    assert sorted(epoch) == list(range(64))  # every example once per epoch
    assert set(widths) == {8, 16, 32}
    # Sorting windows puts neighbours in length together: far below a random batch's spread.
    assert np.mean(spreads) < 0.5 * np.mean(
        [np.ptp(lengths[r]) for r in np.split(np.arange(64), 8)]
    )


def test_length_bucketed_iterator_resumes_and_shards_like_the_plain_one():
    ex, _ = _token_examples(n=40)
    it = BatchIterator(ex, 4, seed=2, window_batches=3, **BUCKETED)
    for _ in range(11):  # past the epoch boundary (3 windows of 3 batches)
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]
    fresh = BatchIterator(ex, 4, seed=2, window_batches=3, **BUCKETED)
    fresh.set_state(state)
    for want in expected:
        got = next(fresh)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    # Two processes see halves of the global batch, cut to the same (global) bucket.
    whole = BatchIterator(ex, 4, seed=2, window_batches=3, **BUCKETED)
    halves = [
        BatchIterator(ex, 4, seed=2, window_batches=3, process_index=p, process_count=2, **BUCKETED)
        for p in range(2)
    ]
    for _ in range(6):
        glob, parts = next(whole), [next(h) for h in halves]
        for k in glob:
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), glob[k])


def test_length_buckets_need_declared_sequence_arrays():
    ex, _ = _token_examples(n=16)
    with pytest.raises(ValueError, match="mask_key"):
        BatchIterator(ex, 4, length_buckets=(8,), sequence_keys=("input_ids",))
    with pytest.raises(ValueError, match="missing: \\['tokens'\\]"):
        BatchIterator(
            ex, 4, length_buckets=(8,), sequence_keys=("tokens",), mask_key="attention_mask"
        )
