"""The bucketed executor: length-sorted plans that pad little, one compile per shape, the callers'
order restored, and stats that count what ran."""

from __future__ import annotations

from collections import Counter

import numpy as np

from routellm_jax.models.executor import (
    LENGTH_BUCKETS,
    ROW_BUCKETS,
    BucketedExecutor,
    Chunk,
    bucket_grid,
    plan_chunks,
)


def _check_plan(plan, lengths, buckets, row_buckets, max_tokens) -> None:
    seen = sorted(i for idx, _, _ in plan for i in idx.tolist())
    assert seen == list(range(len(lengths)))  # every prompt exactly once
    for idx, rows, length in plan:
        assert rows in row_buckets and rows >= len(idx) and length in buckets
        assert max(lengths[i] for i in idx) <= length  # nobody is truncated by the plan
        assert rows == 1 or rows * length <= max_tokens


def _coarse_padding(lengths, buckets=(16, 32, 64, 128, 256)) -> float:
    """Padded / real tokens of one call per coarse length bucket, rows padded to a power of two
    (the planning before length-sorted fine chunks)."""
    groups = Counter(min(b for b in buckets if b >= x) for x in lengths)
    return sum((1 << (n - 1).bit_length()) * b for b, n in groups.items()) / sum(lengths)


def test_plan_chunks_pads_little_and_respects_the_token_cap() -> None:
    rng = np.random.default_rng(0)
    # GSM8K-like lengths (mean ~57, a long tail), as the real prompts in tests/zoo.
    lengths = np.clip(rng.gamma(6.0, 9.5, size=256).astype(int), 12, 256).tolist()
    plan = plan_chunks(lengths, row_buckets=ROW_BUCKETS, max_tokens=1024)
    _check_plan(plan, lengths, LENGTH_BUCKETS, ROW_BUCKETS, 1024)
    padded = sum(r * n for _, r, n in plan)
    assert padded / sum(lengths) < 1.2
    # One call per coarse bucket (16/32/64/128/256), rows to a power of two, pads far more.
    assert _coarse_padding(lengths) > 1.5
    # A single prompt longer than the cap still gets a (one-row) chunk.
    assert [(r, n) for _, r, n in plan_chunks([500], max_tokens=256)] == [(1, 512)]
    assert plan_chunks([]) == []


def test_plan_chunks_trades_padding_against_calls() -> None:
    lengths = [10, 60, 11, 62]
    # Cheap calls: two chunks of similar length; expensive calls: one chunk padded to 64.
    split = plan_chunks(lengths, dispatch_tokens=1.0, max_tokens=None)
    assert [(sorted(i.tolist()), r, n) for i, r, n in split] == [([0, 2], 2, 16), ([1, 3], 2, 64)]
    merged = plan_chunks(lengths, dispatch_tokens=1000.0, max_tokens=None)
    assert [(sorted(i.tolist()), r, n) for i, r, n in merged] == [([0, 1, 2, 3], 4, 64)]


def test_bucket_grid_ends_at_the_limit() -> None:
    assert bucket_grid(LENGTH_BUCKETS, 256)[-3:] == (160, 192, 256)
    assert bucket_grid((1, 8, 32), 20) == (1, 8, 20)


def _summing_executor() -> BucketedExecutor:
    # Row i of a chunk: weight * (number of real tokens); padding columns and rows are zeros.
    return BucketedExecutor(lambda w, x: w * x.sum(axis=1), row_buckets=(1, 2, 4, 8))


def _builder(lengths):
    def build(chunk: Chunk):
        x = np.zeros((chunk.rows, chunk.length), np.float32)
        for r, i in enumerate(chunk.index):
            x[r, : lengths[i]] = 1.0
        return (x,), f"x[{chunk.rows}, {chunk.length}]"

    return build


def test_executor_restores_order_and_compiles_each_shape_once() -> None:
    ex = _summing_executor()
    lengths = [30, 3, 17, 3, 9, 60, 2]
    out = ex.run(lengths, _builder(lengths), (np.float32(2.0),), np.zeros(7, np.float32))
    np.testing.assert_array_equal(out, 2.0 * np.asarray(lengths, np.float32))
    compiles = ex.compile_count
    assert compiles == ex.stats.compiles == len(ex.stats.shapes) == len(set(ex.stats.shapes))
    # The same lengths in another order: the same chunks' shapes, nothing compiled.
    again = lengths[::-1]
    out = ex.run(again, _builder(again), (np.float32(1.0),), np.zeros(7, np.float32))
    np.testing.assert_array_equal(out, np.asarray(again, np.float32))
    assert ex.compile_count == compiles
    stats = ex.stats
    assert stats.prompts == 14 and stats.tokens == 2 * sum(lengths)
    assert stats.padded_tokens >= stats.tokens and stats.calls >= 2
    ex.reset_stats()
    assert ex.stats.calls == 0 and ex.compile_count == compiles  # counters only


def test_executor_rows_only_and_row_cap() -> None:
    ex = BucketedExecutor(lambda w, x: w * x[:, 0], row_buckets=(1, 2, 4, 8))
    values = np.arange(11, dtype=np.float32)

    def build(chunk: Chunk):
        x = np.zeros((chunk.rows, 1), np.float32)
        x[: len(chunk.index), 0] = values[chunk.index]
        return (x,), f"x[{chunk.rows}, 1]"

    out = ex.run(None, build, (np.float32(3.0),), np.zeros(11, np.float32), count=11, max_rows=4)
    np.testing.assert_array_equal(out, 3.0 * values)
    assert all(int(s.split("[")[1].split(",")[0]) <= 4 for s in ex.stats.shapes)
    assert ex.stats.tokens == 0 and ex.stats.prompts == 11  # no sequence axis: no token counts
