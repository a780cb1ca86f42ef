"""Dynamic batching: one queue and one worker per model.

Texts arrive already tokenized, so every length is known. When a worker is free, whatever is
queued goes at once: an idle model never makes a text wait. While every worker is busy, texts
gather, and a flush happens at `max_batch_size` texts, at `max_batch_tokens` padded tokens, or
`max_wait` after the oldest text arrived, whichever comes first (continuous batching: the
batch forms while the model is busy, not while it idles). A flush is sorted by length and cut
into the runs that cost least to compute: each run is padded only to its own longest text and
costs one call's overhead, so texts of very different lengths go in separate calls (padding a
10-token text to 80 costs more than a call of its own) and similar ones share a call. Every
text has its own future, so a request split across flushes still gets its results back whole
and in order.
A full queue is refused at once; a failed batch fails all its futures; a cancelled caller
just leaves its futures behind, which the worker skips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.errors import DeadlineExceeded, InferenceFailed, QueueFull, ShuttingDown
from app.metrics import Metrics

log = logging.getLogger(__name__)

InferFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
OutcomeFn = Callable[[bool], None]


# what one more model call costs, in padded tokens: small on a CPU (a call of 8 texts of 8
# tokens takes 5x one text's 1.4 ms), large on a GPU (each call launches every kernel again:
# worth about a thousand padded tokens of work)
CPU_RUN_OVERHEAD_TOKENS = 8
GPU_RUN_OVERHEAD_TOKENS = 1024


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_wait_s: float = 0.005
    flush_when_idle: bool = True  # a free worker takes what is queued without waiting
    max_queue: int = 2048
    retry_after_s: int = 1
    workers: int = 1  # batches running in parallel (threads calling the model)
    run_overhead_tokens: int = CPU_RUN_OVERHEAD_TOKENS


@dataclass(slots=True)
class _Pending:
    ids: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued: float


def _consume(future: asyncio.Future[list[np.ndarray]]) -> None:
    """Mark a gather's outcome as seen: its caller may have left (deadline, disconnect)."""
    if not future.cancelled():
        future.exception()


def plan_runs(lengths: Sequence[int], overhead_tokens: float) -> list[list[int]]:
    """Indices of a flush cut into runs, shortest first, at the least total cost.

    A run of texts sorted by length costs `overhead_tokens` plus its padded tokens (count x its
    longest): the inference time of an encoder grows about linearly with padded tokens, plus a
    fixed cost per call. The cheapest cut of the sorted texts into contiguous runs is found by
    dynamic programming over where the last run starts (O(n^2) in numpy-vectorised rows).
    """
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    widths = np.asarray(lengths, dtype=np.float64)[order]
    count = len(order)
    starts = np.arange(count, dtype=np.float64)
    best = np.zeros(count + 1)  # best[j]: the cheapest plan for the j shortest texts
    cut = np.zeros(count + 1, dtype=np.int64)  # where the last run of that plan starts
    for end in range(1, count + 1):
        width = widths[end - 1]
        costs = best[:end] + (end - starts[:end]) * width
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]] + overhead_tokens
    runs: list[list[int]] = []
    end = count
    while end > 0:
        runs.append(order[cut[end] : end].tolist())
        end = cut[end]
    return runs[::-1]


def pad(rows: Sequence[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


class Batcher:
    def __init__(
        self,
        name: str,
        infer: InferFn,
        pad_id: int,
        config: BatchConfig,
        metrics: Metrics | None = None,
        on_outcome: OutcomeFn | None = None,
    ) -> None:
        self.name = name
        self._on_outcome = on_outcome
        self._infer = infer
        self._pad_id = pad_id
        self.config = config
        self._metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One batch more than there are workers: the next batch waits behind the running
        # ones, so no worker idles while the event loop answers the last batch's callers.
        self._slots = asyncio.Semaphore(config.workers + 1)
        self._running: set[asyncio.Task[None]] = set()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher-{self.name}"
            )

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Refuse new texts, finish the queued ones (up to the timeout), then stop the worker."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_timeout_s)
            except TimeoutError:
                self._task.cancel()
                for task in list(self._running):
                    task.cancel()
                await asyncio.gather(self._task, *self._running, return_exceptions=True)
            self._task = None
        self._fail(list(self._queue), ShuttingDown(f"model {self.name!r} is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._set_depth()

    def submit(self, rows: Sequence[np.ndarray]) -> list[asyncio.Future[np.ndarray]]:
        """Queue all of a request's texts, or none of them."""
        if self._closing:
            raise ShuttingDown(f"model {self.name!r} is shutting down")
        self._prune()
        if len(self._queue) + len(rows) > self.config.max_queue:
            if self._metrics:
                self._metrics.rejected.labels("queue_full").inc()
            raise QueueFull(
                f"model {self.name!r} has {len(self._queue)} texts queued "
                f"(limit {self.config.max_queue}); retry later",
                details={"queued": len(self._queue), "limit": self.config.max_queue},
                headers={"Retry-After": str(self.config.retry_after_s)},
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        futures = []
        for row in rows:
            item = _Pending(row, loop.create_future(), now)
            self._queue.append(item)
            futures.append(item.future)
        self._set_depth()
        self._arrived.set()
        return futures

    async def run(self, rows: Sequence[np.ndarray], timeout_s: float) -> list[np.ndarray]:
        """Logits for each row, in order. Raises QueueFull, DeadlineExceeded, InferenceFailed."""
        futures = self.submit(rows)
        gathered = asyncio.gather(*futures)
        gathered.add_done_callback(_consume)
        try:
            return list(await asyncio.wait_for(gathered, timeout_s))
        except TimeoutError:
            if self._metrics:
                self._metrics.rejected.labels("deadline").inc()
            raise DeadlineExceeded(
                f"model {self.name!r} did not answer within {timeout_s:g} s",
                details={"timeout_s": timeout_s},
            ) from None
        finally:
            for future in futures:
                future.cancel()
            self._prune()

    def _prune(self) -> None:
        if any(item.future.done() for item in self._queue):
            self._queue = deque(item for item in self._queue if not item.future.done())
            self._set_depth()

    def _set_depth(self) -> None:
        if self._metrics:
            self._metrics.queue_depth.labels(self.name).set(len(self._queue))

    def _ready(self) -> bool:
        """True when the queue already holds a full batch (by count or by padded tokens)."""
        if len(self._queue) >= self.config.max_batch_size:
            return True
        longest = 0
        for count, item in enumerate(self._queue, start=1):
            longest = max(longest, len(item.ids))
            if longest * count >= self.config.max_batch_tokens:
                return True
        return False

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        longest = 0
        while self._queue and len(taken) < self.config.max_batch_size:
            nxt = self._queue[0]
            if nxt.future.done():
                self._queue.popleft()
                continue
            width = max(longest, len(nxt.ids))
            if taken and width * (len(taken) + 1) > self.config.max_batch_tokens:
                break
            taken.append(self._queue.popleft())
            longest = width
        self._set_depth()
        return taken

    async def _loop(self) -> None:
        while self._queue or not self._closing:
            await self._arrived.wait()
            self._prune()
            if not self._queue:
                self._arrived.clear()
                continue
            flush_at = self._queue[0].enqueued + self.config.max_wait_s
            while self._busy() and not self._ready() and not self._closing:
                remaining = flush_at - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            await self._slots.acquire()
            batch = self._take()
            if not self._queue:
                self._arrived.clear()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)
        await asyncio.gather(*self._running, return_exceptions=True)

    def _busy(self) -> bool:
        """Every worker has a batch: only then is waiting for more texts worth their latency."""
        return not self.config.flush_when_idle or len(self._running) >= self.config.workers

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()
        self._arrived.set()  # a worker is free: what is queued can go at once

    async def _execute(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        if self._metrics:
            for item in batch:
                self._metrics.queue_wait.labels(self.name).observe(started - item.enqueued)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._run_sync, batch, loop)
        except asyncio.CancelledError:
            self._fail(batch, ShuttingDown(f"model {self.name!r} is shutting down"))
            raise
        except Exception:
            log.exception("batch of %d texts failed on model %s", len(batch), self.name)
            self._fail(batch, InferenceFailed(f"inference failed on model {self.name!r}"))
            if self._on_outcome:
                self._on_outcome(False)
            return
        if self._on_outcome:
            self._on_outcome(True)

    @staticmethod
    def _fail(items: list[_Pending], error: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    @staticmethod
    def _deliver(items: list[_Pending], logits: np.ndarray) -> None:
        for item, row in zip(items, logits, strict=True):
            if not item.future.done():
                item.future.set_result(row)

    def _run_sync(self, batch: list[_Pending], loop: asyncio.AbstractEventLoop) -> None:
        """Each run's texts are answered as soon as their run is done, not when the whole
        flush is: the short texts of a flush do not wait for its long ones. (These callbacks
        reach the loop before this call's own completion, so a later run's failure only
        fails the texts not answered yet.)"""
        lengths = [len(item.ids) for item in batch]
        for run in plan_runs(lengths, self.config.run_overhead_tokens):
            ids, mask = pad([batch[i].ids for i in run], self._pad_id)
            started = time.perf_counter()
            logits = self._infer(ids, mask)
            if len(logits) != len(run):
                raise ValueError(f"{len(run)} texts in, {len(logits)} rows of logits out")
            self._observe(ids.size, int(mask.sum()), len(run), time.perf_counter() - started)
            loop.call_soon_threadsafe(self._deliver, [batch[i] for i in run], logits)

    def _observe(self, padded: int, real: int, size: int, seconds: float) -> None:
        if not self._metrics:
            return
        m = self._metrics
        m.inference.labels(self.name).observe(seconds)
        m.batch_size.labels(self.name).observe(size)
        m.batch_padded_tokens.labels(self.name).observe(padded)
        m.padding_efficiency.labels(self.name).observe(real / padded)
