"""An asyncio micro-batcher: concurrent requests share one router forward pass.

Each request awaits :meth:`MicroBatcher.submit`. A single worker task takes the first waiting
prompt, keeps collecting for at most ``window_s`` (or until ``max_batch`` prompts), then runs the
batch function in a worker thread so the event loop keeps accepting requests. While one batch
runs, the next one fills up, so batches grow with load and throughput grows with them.

The window is adaptive (``adaptive=True``): after a batch of one prompt (an idle server) the next
batch takes only what is already queued, so a lone request does not pay the window; as soon as
prompts queue up behind a forward pass (a batch of two or more), the window applies again.

One caller's bad input must not fail the others: when the batch function raises for a batch of
several prompts, each prompt of that batch is scored again on its own, so only the prompts that
fail alone get the exception. ``max_queue`` bounds the prompts waiting for a batch; past it,
:meth:`MicroBatcher.submit` raises :class:`QueueFull` at once instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

BatchFn = Callable[[Sequence[str]], Any]
# Called after each batch with (batch size, seconds the batch function took).
BatchObserver = Callable[[int, float], None]

logger = logging.getLogger(__name__)
# What a batch function gives each prompt: one score, or a row of scores ([n, k] tables).
Score = float | list[float]


class QueueFull(RuntimeError):
    """The batcher already holds ``max_queue`` waiting prompts (a server answers 429)."""


class MicroBatcher:
    """Group prompts from concurrent callers into batches for ``fn(prompts) -> [n] scores``.

    Create it inside the running event loop that will use it. A batch that raises is retried one
    prompt at a time, so an exception reaches only the callers whose own prompt fails.

    Example:
        >>> def score(prompts):
        ...     if "bad" in prompts:
        ...         raise ValueError("cannot score 'bad'")
        ...     return [len(p) for p in prompts]
        >>> async def demo():
        ...     batcher = MicroBatcher(score, window_s=0.002)
        ...     out = await asyncio.gather(batcher.submit("ab"), batcher.submit("abc"),
        ...                                batcher.submit("bad"), return_exceptions=True)
        ...     await batcher.close()
        ...     return out
        >>> asyncio.run(demo())
        [2.0, 3.0, ValueError("cannot score 'bad'")]
    """

    def __init__(
        self,
        fn: BatchFn,
        *,
        window_s: float = 0.005,
        max_batch: int = 64,
        executor: Executor | None = None,
        observer: BatchObserver | None = None,
        adaptive: bool = True,
        max_queue: int | None = None,
    ) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1 (or None: unbounded), got {max_queue}")
        self._fn = fn
        self._window_s = window_s
        self._max_batch = max_batch
        self._executor = executor
        self._observer = observer
        self._adaptive = adaptive
        self._max_queue = max_queue
        self._last_size = 0
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[float]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def max_queue(self) -> int | None:
        """The most prompts that may wait for a batch (``None``: unbounded)."""
        return self._max_queue

    @property
    def waiting(self) -> int:
        """Prompts queued and not yet taken into a batch."""
        return self._queue.qsize()

    async def submit(self, prompt: str) -> Score:
        """Score one prompt as part of the next batch; raises what scoring it alone raises.

        Raises :class:`QueueFull` at once when ``max_queue`` prompts are already waiting.
        """
        return (await self.submit_many([prompt]))[0]

    async def submit_many(self, prompts: Sequence[str]) -> list[Score]:
        """Score several prompts (all queued at once, or none: :class:`QueueFull`), in order.

        Example:
            >>> async def demo():
            ...     batcher = MicroBatcher(lambda ps: [len(p) for p in ps], max_queue=2)
            ...     out = await batcher.submit_many(["a", "bb"])
            ...     try:
            ...         await batcher.submit_many(["a", "b", "c"])
            ...     except QueueFull as err:
            ...         out.append(str(err))
            ...     await batcher.close()
            ...     return out
            >>> asyncio.run(demo())
            [1.0, 2.0, '3 prompts do not fit: 0 of at most 2 are waiting']
        """
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        if self._max_queue is not None and self._queue.qsize() + len(prompts) > self._max_queue:
            verb = "does" if len(prompts) == 1 else "do"
            raise QueueFull(
                f"{len(prompts)} prompt{'s' if len(prompts) != 1 else ''} {verb} not fit: "
                f"{self._queue.qsize()} of at most {self._max_queue} are waiting"
            )
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._run())
        futures: list[asyncio.Future[float]] = []
        for prompt in prompts:
            future: asyncio.Future[float] = loop.create_future()
            self._queue.put_nowait((prompt, future))
            futures.append(future)
        try:
            return list(await asyncio.gather(*futures))
        finally:
            # One failed or cancelled: the rest are not needed (still queued ones are skipped).
            for future in futures:
                future.cancel()

    async def close(self) -> None:
        """Stop the worker; prompts still waiting get a RuntimeError."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("MicroBatcher closed before this prompt ran"))

    async def _collect(self) -> list[tuple[str, asyncio.Future[float]]]:
        batch = [await self._queue.get()]
        idle = self._adaptive and self._last_size <= 1
        deadline = time.monotonic() + (0.0 if idle else self._window_s)
        while len(batch) < self._max_batch:
            # Take what is already queued without waiting; only then wait out the window.
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    def _score(self, prompts: list[str]) -> list[Score]:
        scores = np.asarray(self._fn(prompts), dtype=np.float64)
        if scores.ndim != 2:  # one score per prompt; a [n, k] table gives each prompt its row
            scores = scores.reshape(-1)
        if scores.shape[0] != len(prompts):
            raise ValueError(
                f"batch function returned {scores.shape[0]} scores for {len(prompts)} prompts"
            )
        return scores.tolist()

    def _score_each(self, prompts: list[str]) -> list[tuple[Score | Exception, float]]:
        """Each prompt alone (in one worker-thread job): (score or exception, seconds) per prompt."""
        out: list[tuple[Score | Exception, float]] = []
        for prompt in prompts:
            start = time.perf_counter()
            try:
                result: Score | Exception = self._score([prompt])[0]
            except Exception as err:  # this prompt's own failure, handed to its caller only
                result = err
            out.append((result, time.perf_counter() - start))
        return out

    def _observe(self, size: int, seconds: float) -> None:
        if self._observer is not None:
            self._observer(size, seconds)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            # Callers that gave up (client disconnected) are dropped before the forward pass.
            batch = [(p, f) for p, f in batch if not f.done()]
            if not batch:
                continue
            prompts = [p for p, _ in batch]
            self._last_size = len(prompts)
            try:
                start = time.perf_counter()
                try:
                    scores = await loop.run_in_executor(self._executor, self._score, prompts)
                except Exception as err:
                    self._observe(len(prompts), time.perf_counter() - start)
                    if len(batch) == 1:
                        _settle(batch[0][1], err)
                        continue
                    # Whose prompt failed is unknown (the fault may not even be a prompt's):
                    # score each alone, so innocent callers get their answers.
                    logger.warning(
                        f"a batch of {len(batch)} prompts failed ({type(err).__name__}); "
                        "scoring them one at a time"
                    )
                    batch = [(p, f) for p, f in batch if not f.done()]
                    each = await loop.run_in_executor(
                        self._executor, self._score_each, [p for p, _ in batch]
                    )
                    for (_, future), (result, seconds) in zip(batch, each):
                        self._observe(1, seconds)
                        _settle(future, result)
                    continue
                self._observe(len(prompts), time.perf_counter() - start)
                for (_, future), score in zip(batch, scores):
                    _settle(future, score)  # a float, or a list of floats for a table row
            except asyncio.CancelledError:
                for _, future in batch:
                    _settle(future, RuntimeError("MicroBatcher closed during this batch"))
                raise


def _settle(future: asyncio.Future[float], result: float | BaseException) -> None:
    """Give a caller its score or exception, unless it already gave up."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
