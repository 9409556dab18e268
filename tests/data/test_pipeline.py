"""The grain input pipeline: seeded epochs, exact resumption, per-process shards of one batch."""

from __future__ import annotations

import numpy as np
import pytest

from routellm_jax.data.pipeline import BatchIterator, index_dataset, num_examples, split_holdout


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
