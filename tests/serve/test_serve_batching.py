"""The micro-batcher groups concurrent prompts, keeps order, isolates failures, bounds its queue."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from routellm_jax.serve.batching import MicroBatcher, QueueFull


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


def test_a_failing_prompt_fails_only_its_own_caller():
    """One bad prompt among 30 in a batch: the batch is rescored prompt by prompt, so only the bad
    prompt's caller sees the exception (before, all 31 callers got it)."""
    calls = []

    def score(prompts):
        calls.append(list(prompts))
        time.sleep(0.005)  # a forward pass: concurrent callers pile into one batch meanwhile
        if "bad" in prompts:
            raise TypeError("tokenizer cannot read 'bad'")
        return [float(len(p)) for p in prompts]

    async def main():
        batcher = MicroBatcher(score, window_s=0.01, max_batch=64)
        prompts = [f"innocent {i}" for i in range(15)] + ["bad"] + [f"ok {i}" for i in range(15)]
        results = await asyncio.gather(
            *(batcher.submit(p) for p in prompts), return_exceptions=True
        )
        after = await batcher.submit("later")
        await batcher.close()
        return prompts, results, after

    prompts, results, after = asyncio.run(main())
    for prompt, result in zip(prompts, results):
        if prompt == "bad":
            assert isinstance(result, TypeError)
        else:
            assert result == float(len(prompt))
    assert max(len(c) for c in calls) > 1  # the bad prompt did share a batch with others
    assert after == 5.0  # and the batcher still works


def test_a_batch_that_fails_alone_too_fails_every_caller():
    """A fault that is no prompt's (a broken router) still reaches every caller of the batch."""

    def broken(prompts):
        time.sleep(0.005)
        raise RuntimeError("checkpoint missing")

    async def main():
        batcher = MicroBatcher(broken, window_s=0.01)
        try:
            return await asyncio.gather(
                *(batcher.submit(str(i)) for i in range(8)), return_exceptions=True
            )
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "checkpoint" in str(r) for r in results)


def test_wrong_number_of_scores_is_an_error():
    async def main():
        batcher = MicroBatcher(lambda ps: [0.1] * (len(ps) + 1), window_s=0.01)
        try:
            return await asyncio.gather(
                batcher.submit("a"), batcher.submit("b"), return_exceptions=True
            )
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) and "2 scores for 1" in str(r) for r in results)


def test_a_full_queue_refuses_at_once_and_all_or_nothing():
    release = threading.Event()

    def slow(prompts):
        release.wait(5)
        return [1.0] * len(prompts)

    async def main():
        batcher = MicroBatcher(slow, window_s=0.0, max_batch=1, max_queue=3)
        running = asyncio.ensure_future(batcher.submit("running"))  # taken into a batch
        while batcher.waiting:
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.submit(f"q{i}")) for i in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="2 prompts do not fit: 2 of at most 3"):
            await batcher.submit_many(["x", "y"])  # one slot left: neither is queued
        assert batcher.waiting == 2
        last = asyncio.ensure_future(batcher.submit("fits"))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await batcher.submit("one too many")
        release.set()
        out = await asyncio.gather(running, *queued, last)
        await batcher.close()
        return out

    assert asyncio.run(main()) == [1.0] * 4


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda ps: ps, max_batch=0)
    with pytest.raises(ValueError, match="window_s"):
        MicroBatcher(lambda ps: ps, window_s=-1)
    with pytest.raises(ValueError, match="max_queue"):
        MicroBatcher(lambda ps: ps, max_queue=0)


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
