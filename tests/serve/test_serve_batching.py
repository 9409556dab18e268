"""The micro-batcher groups concurrent prompts, keeps order, and passes failures to every caller."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from routellm_jax.serve.batching import MicroBatcher


def test_concurrent_prompts_share_batches_and_keep_their_answers():
    sizes = []

    def score(prompts):
        sizes.append(len(prompts))
        time.sleep(0.01)  # a forward pass: the next batch fills meanwhile
        return [float(p) for p in prompts]

    async def main():
        batcher = MicroBatcher(score, window_s=0.005, max_batch=16)
        out = await asyncio.gather(*(batcher.submit(str(i)) for i in range(100)))
        await batcher.close()
        return out

    out = asyncio.run(main())
    assert out == [float(i) for i in range(100)]
    assert sum(sizes) == 100
    assert max(sizes) == 16  # capped at max_batch
    assert len(sizes) <= 10  # batched, not one call per prompt


def test_batch_function_runs_off_the_event_loop():
    loop_threads, fn_threads = set(), set()

    def score(prompts):
        fn_threads.add(threading.get_ident())
        return [0.5] * len(prompts)

    async def main():
        loop_threads.add(threading.get_ident())
        batcher = MicroBatcher(score, window_s=0.0)
        await batcher.submit("a")
        await batcher.close()

    asyncio.run(main())
    assert fn_threads and fn_threads.isdisjoint(loop_threads)


def test_failure_reaches_every_caller_and_batcher_recovers():
    calls = []

    def score(prompts):
        calls.append(list(prompts))
        if "bad" in prompts:
            raise RuntimeError("forward pass failed")
        return [1.0] * len(prompts)

    async def main():
        batcher = MicroBatcher(score, window_s=0.01)
        results = await asyncio.gather(
            batcher.submit("bad"), batcher.submit("ok"), return_exceptions=True
        )
        after = await batcher.submit("later")
        await batcher.close()
        return results, after

    results, after = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after == 1.0


def test_wrong_number_of_scores_is_an_error():
    async def main():
        batcher = MicroBatcher(lambda ps: [0.1], window_s=0.01)
        try:
            return await asyncio.gather(
                batcher.submit("a"), batcher.submit("b"), return_exceptions=True
            )
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) and "1 scores for 2" in str(r) for r in results)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda ps: ps, max_batch=0)
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(lambda ps: ps, window_s=-1)


def test_lone_requests_do_not_wait_for_the_window():
    async def main():
        batcher = MicroBatcher(lambda ps: [0.0] * len(ps), window_s=0.2)
        start = time.perf_counter()
        for _ in range(5):
            await batcher.submit("alone")
        elapsed = time.perf_counter() - start
        fixed = MicroBatcher(lambda ps: [0.0] * len(ps), window_s=0.05, adaptive=False)
        start = time.perf_counter()
        await fixed.submit("alone")
        fixed_elapsed = time.perf_counter() - start
        await batcher.close()
        await fixed.close()
        return elapsed, fixed_elapsed

    elapsed, fixed_elapsed = asyncio.run(main())
    assert elapsed < 0.2  # five sequential calls, none waited the 0.2 s window
    assert fixed_elapsed >= 0.05  # without adaptation a lone call waits the window
