"""An asyncio micro-batcher: concurrent requests share one router forward pass.

Each request awaits :meth:`MicroBatcher.submit`. A single worker task takes the first waiting
prompt, keeps collecting for at most ``window_s`` (or until ``max_batch`` prompts), then runs the
batch function in a worker thread so the event loop keeps accepting requests. While one batch
runs, the next one fills up, so batches grow with load and throughput grows with them.

The window is adaptive (``adaptive=True``): after a batch of one prompt (an idle server) the next
batch takes only what is already queued, so a lone request does not pay the window; as soon as
prompts queue up behind a forward pass (a batch of two or more), the window applies again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

BatchFn = Callable[[Sequence[str]], Any]
# Called after each batch with (batch size, seconds the batch function took).
BatchObserver = Callable[[int, float], None]


class MicroBatcher:
    """Group prompts from concurrent callers into batches for ``fn(prompts) -> [n] scores``.

    Create it inside the running event loop that will use it.

    Example:
        >>> async def demo():
        ...     batcher = MicroBatcher(lambda ps: [len(p) for p in ps], window_s=0.002)
        ...     out = await asyncio.gather(batcher.submit("ab"), batcher.submit("abc"))
        ...     await batcher.close()
        ...     return out
        >>> asyncio.run(demo())
        [2.0, 3.0]
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
    ) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._fn = fn
        self._window_s = window_s
        self._max_batch = max_batch
        self._executor = executor
        self._observer = observer
        self._adaptive = adaptive
        self._last_size = 0
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[float]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, prompt: str) -> float:
        """Score one prompt as part of the next batch; raises what the batch function raised.

        Example:
            >>> await batcher.submit("What is 2+2?")  # doctest: +SKIP
            0.31
        """
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        await self._queue.put((prompt, future))
        return await future

    async def close(self) -> None:
        """Stop the worker; prompts still waiting get a RuntimeError.

        Example:
            >>> await batcher.close()  # doctest: +SKIP
        """
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
            start = time.perf_counter()
            try:
                scores = await loop.run_in_executor(self._executor, self._fn, prompts)
                scores = np.asarray(scores, dtype=np.float64).reshape(-1)
                if scores.shape[0] != len(prompts):
                    raise ValueError(
                        f"batch function returned {scores.shape[0]} scores for {len(prompts)} prompts"
                    )
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError("MicroBatcher closed during this batch"))
                raise
            except Exception as err:  # every caller of this batch sees the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            finally:
                if self._observer is not None:
                    self._observer(len(prompts), time.perf_counter() - start)
            for (_, future), score in zip(batch, scores.tolist()):
                if not future.done():
                    future.set_result(float(score))
