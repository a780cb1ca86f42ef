"""Dynamic batching: one queue and one worker per model.

Texts arrive already tokenized, so every length is known. When a worker is free, whatever is
queued goes at once: an idle model never makes a text wait. While every worker is busy, texts
gather, and a flush happens at `max_batch_size` texts, at `max_batch_tokens` padded tokens, or
`max_wait` after the oldest text arrived, whichever comes first (continuous batching: the
batch forms while the model is busy, not while it idles). A flush is sorted by length and cut
into length-homogeneous runs, each padded only to its own longest text. Every text has its
own future, so a request split across flushes still gets its results back whole and in order.
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


@dataclass(frozen=True)
class BatchConfig:
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_wait_s: float = 0.005
    flush_when_idle: bool = True  # a free worker takes what is queued without waiting
    max_queue: int = 2048
    retry_after_s: int = 1
    workers: int = 1  # batches running in parallel (threads calling the model)
    split_ratio: float = 2.0  # start a new run when a text is this many times the run's shortest
    min_run: int = 4  # ... but never make runs shorter than this


@dataclass(slots=True)
class _Pending:
    ids: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued: float


def _consume(future: asyncio.Future[list[np.ndarray]]) -> None:
    """Mark a gather's outcome as seen: its caller may have left (deadline, disconnect)."""
    if not future.cancelled():
        future.exception()


def plan_runs(lengths: Sequence[int], split_ratio: float, min_run: int) -> list[list[int]]:
    """Indices of a flush grouped into runs of similar length, shortest first."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    runs: list[list[int]] = []
    for index in order:
        if runs and (
            len(runs[-1]) < min_run or lengths[index] <= split_ratio * lengths[runs[-1][0]]
        ):
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


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
            results = await loop.run_in_executor(self._executor, self._run_sync, batch)
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
        for item, logits in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(logits)

    @staticmethod
    def _fail(items: list[_Pending], error: Exception) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    def _run_sync(self, batch: list[_Pending]) -> list[np.ndarray]:
        lengths = [len(item.ids) for item in batch]
        out: list[np.ndarray] = [np.empty(0)] * len(batch)
        for run in plan_runs(lengths, self.config.split_ratio, self.config.min_run):
            ids, mask = pad([batch[i].ids for i in run], self._pad_id)
            started = time.perf_counter()
            logits = self._infer(ids, mask)
            self._observe(ids.size, int(mask.sum()), len(run), time.perf_counter() - started)
            for row, index in enumerate(run):
                out[index] = logits[row]
        return out

    def _observe(self, padded: int, real: int, size: int, seconds: float) -> None:
        if not self._metrics:
            return
        m = self._metrics
        m.inference.labels(self.name).observe(seconds)
        m.batch_size.labels(self.name).observe(size)
        m.batch_padded_tokens.labels(self.name).observe(padded)
        m.padding_efficiency.labels(self.name).observe(real / padded)
