"""The dynamic batcher against a fake model that echoes each row's first token."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import numpy as np
import pytest

from app.batching import BatchConfig, Batcher, pad, plan_runs
from app.errors import DeadlineExceeded, InferenceFailed, QueueFull, ShuttingDown
from app.metrics import Metrics


class EchoModel:
    """logits[i] = [first token of row i, real length of row i]; records every call."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.gate.wait(5)
        self.calls.append(ids.shape)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("secret internal detail")
        return np.stack([ids[:, 0], mask.sum(1)], axis=1).astype(np.float32)


def rows(*specs: tuple[int, int]) -> list[np.ndarray]:
    """(token, length) -> a row of `length` copies of `token`."""
    return [np.full(length, token, dtype=np.int64) for token, length in specs]


def make(model: EchoModel, **config: float) -> Batcher:
    batcher = Batcher("m", model, pad_id=0, config=BatchConfig(**config), metrics=Metrics())  # type: ignore[arg-type]
    batcher.start()
    return batcher


async def test_flush_at_max_batch_size() -> None:
    model = EchoModel()
    batcher = make(model, max_batch_size=4, max_wait_s=5.0, run_overhead_tokens=10_000)
    started = time.perf_counter()
    out = await batcher.run(rows(*[(t, 3) for t in range(1, 5)]), timeout_s=5)
    assert time.perf_counter() - started < 1.0  # did not wait for max_wait
    assert model.calls == [(4, 3)]
    assert [int(o[0]) for o in out] == [1, 2, 3, 4]
    await batcher.stop()


async def test_flush_at_max_batch_tokens() -> None:
    model = EchoModel()
    batcher = make(
        model, max_batch_size=100, max_batch_tokens=20, max_wait_s=5.0, run_overhead_tokens=10_000
    )
    started = time.perf_counter()
    out = await batcher.run(rows(*[(t, 10) for t in range(1, 5)]), timeout_s=5)
    assert time.perf_counter() - started < 1.0
    assert model.calls == [(2, 10), (2, 10)]  # 2 x 10 padded tokens per batch
    assert [int(o[0]) for o in out] == [1, 2, 3, 4]
    await batcher.stop()


async def test_flush_after_max_wait_when_asked_to_wait_even_if_idle() -> None:
    model = EchoModel()
    batcher = make(model, max_batch_size=64, max_wait_s=0.15, flush_when_idle=False)
    started = time.perf_counter()
    out = await batcher.run(rows((7, 2)), timeout_s=5)
    waited = time.perf_counter() - started
    assert 0.14 <= waited < 1.0
    assert int(out[0][0]) == 7
    await batcher.stop()


async def test_an_idle_model_takes_a_text_at_once() -> None:
    model = EchoModel()
    batcher = make(model, max_batch_size=64, max_wait_s=5.0)
    started = time.perf_counter()
    out = await batcher.run(rows((7, 2)), timeout_s=10)
    assert time.perf_counter() - started < 1.0  # not the 5 s max_wait
    assert int(out[0][0]) == 7
    await batcher.stop()


async def test_texts_gather_while_the_model_is_busy() -> None:
    """One worker, held busy by the first text: the next three, sent one by one, wait for
    max_wait and run together; once the worker is free again a new text goes at once."""
    model = EchoModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=64, max_wait_s=0.1, workers=1)
    first = asyncio.create_task(batcher.run(rows((1, 2)), timeout_s=10))
    await asyncio.sleep(0.05)
    rest = []
    for token in (2, 3, 4):
        rest.append(asyncio.create_task(batcher.run(rows((token, 2)), timeout_s=10)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # past max_wait: the three are one batch, queued behind the first
    model.gate.set()
    assert [int(o[0][0]) for o in await asyncio.gather(first, *rest)] == [1, 2, 3, 4]
    assert [b for b, _ in model.calls] == [1, 3]
    started = time.perf_counter()
    await batcher.run(rows((5, 2)), timeout_s=10)
    assert time.perf_counter() - started < 0.08  # idle again: no max_wait
    assert [b for b, _ in model.calls] == [1, 3, 1]
    await batcher.stop()


async def test_order_kept_under_concurrency_with_random_lengths() -> None:
    model = EchoModel(delay_s=0.002)
    batcher = make(model, max_batch_size=8, max_batch_tokens=200, max_wait_s=0.002)
    rng = random.Random(0)

    async def client(cid: int) -> None:
        count = rng.randint(1, 12)
        specs = [(cid * 100 + i, rng.randint(1, 40)) for i in range(count)]
        await asyncio.sleep(rng.random() * 0.01)
        out = await batcher.run(rows(*specs), timeout_s=10)
        assert [(int(o[0]), int(o[1])) for o in out] == specs

    await asyncio.gather(*(client(c) for c in range(1, 41)))
    assert len(model.calls) > 1
    assert all(b <= 8 and b * s <= 200 for b, s in model.calls if b > 1)
    assert batcher.depth == 0
    await batcher.stop()


async def test_request_larger_than_a_batch_is_split_and_reassembled() -> None:
    model = EchoModel()
    batcher = make(model, max_batch_size=3, max_wait_s=0.001)
    specs = [(t, 1 + t % 5) for t in range(1, 11)]
    out = await batcher.run(rows(*specs), timeout_s=5)
    assert [(int(o[0]), int(o[1])) for o in out] == specs
    assert sum(b for b, _ in model.calls) == 10
    await batcher.stop()


async def test_queue_full_is_refused_at_once_with_retry_after() -> None:
    model = EchoModel()
    model.gate.clear()  # hold the worker so the queue fills
    batcher = make(model, max_batch_size=1, max_wait_s=0.0, max_queue=3, retry_after_s=3)
    running = asyncio.create_task(batcher.run(rows((1, 1)), timeout_s=5))
    await asyncio.sleep(0.02)
    waiting = asyncio.create_task(batcher.run(rows((2, 1)), timeout_s=5))  # next, behind it
    await asyncio.sleep(0.02)
    queued = asyncio.create_task(batcher.run(rows((3, 1), (4, 1), (5, 1)), timeout_s=5))
    await asyncio.sleep(0.02)
    assert batcher.depth == 3
    with pytest.raises(QueueFull) as info:
        batcher.submit(rows((6, 1)))  # 3 + 1 > 3: refused at once, nothing queued
    assert info.value.headers["Retry-After"] == "3"
    assert info.value.details == {"queued": 3, "limit": 3}
    assert batcher.depth == 3
    model.gate.set()
    assert [int(o[0]) for o in await running] == [1]
    assert [int(o[0]) for o in await waiting] == [2]
    assert [int(o[0]) for o in await queued] == [3, 4, 5]
    await batcher.stop()


async def test_parallel_workers_run_batches_at_once() -> None:
    model = EchoModel(delay_s=0.2)
    batcher = make(model, max_batch_size=2, max_wait_s=0.0, workers=3)
    started = time.perf_counter()
    out = await asyncio.gather(*(batcher.run(rows((t, 2), (t, 2)), timeout_s=5) for t in range(3)))
    assert time.perf_counter() - started < 0.5  # three 0.2 s batches, not one after another
    assert [[int(o[0]) for o in pair] for pair in out] == [[0, 0], [1, 1], [2, 2]]
    await batcher.stop()


async def test_failing_batch_fails_every_waiting_request() -> None:
    model = EchoModel(fail=True)
    batcher = make(model, max_batch_size=8, max_wait_s=0.01)
    results = await asyncio.gather(
        batcher.run(rows((1, 2)), timeout_s=5),
        batcher.run(rows((2, 2), (3, 2)), timeout_s=5),
        return_exceptions=True,
    )
    assert all(isinstance(r, InferenceFailed) for r in results)
    assert "secret" not in str(results[0])
    model.fail = False  # the worker survives a failed batch
    assert int((await batcher.run(rows((4, 2)), timeout_s=5))[0][0]) == 4
    await batcher.stop()


async def test_cancelled_caller_does_not_break_its_batch() -> None:
    model = EchoModel(delay_s=0.05)
    batcher = make(model, max_batch_size=8, max_wait_s=0.02)
    leaving = asyncio.create_task(batcher.run(rows((1, 3), (2, 3)), timeout_s=5))
    staying = asyncio.create_task(batcher.run(rows((3, 3)), timeout_s=5))
    await asyncio.sleep(0.005)
    leaving.cancel()
    assert int((await staying)[0][0]) == 3
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert batcher.depth == 0
    await batcher.stop()


async def test_deadline_gives_deadline_exceeded_and_frees_the_queue() -> None:
    model = EchoModel()
    model.gate.clear()
    batcher = make(model, max_batch_size=1, max_wait_s=0.0)
    blocker = asyncio.create_task(batcher.run(rows((1, 1)), timeout_s=5))
    await asyncio.sleep(0.02)
    with pytest.raises(DeadlineExceeded, match=r"did not answer within 0\.05 s"):
        await batcher.run(rows((2, 1), (3, 1)), timeout_s=0.05)
    assert batcher.depth == 0
    model.gate.set()
    await blocker
    await batcher.stop()


async def test_stop_drains_queued_work_then_refuses() -> None:
    model = EchoModel(delay_s=0.02)
    batcher = make(model, max_batch_size=2, max_wait_s=0.0)
    pending = asyncio.create_task(batcher.run(rows(*[(t, 2) for t in range(1, 7)]), timeout_s=5))
    await asyncio.sleep(0.001)
    await batcher.stop(drain_timeout_s=5)
    assert [int(o[0]) for o in await pending] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ShuttingDown):
        batcher.submit(rows((9, 1)))


class SlowOnLongRows(EchoModel):
    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if ids.shape[1] > 50:
            time.sleep(0.5)
        return super().__call__(ids, mask)


async def test_a_short_text_is_answered_before_the_long_run_of_its_flush() -> None:
    model = SlowOnLongRows()
    batcher = make(model, run_overhead_tokens=8)
    short, long = batcher.submit(rows((1, 3), (2, 100)))
    assert int((await asyncio.wait_for(short, 0.4))[0]) == 1
    assert not long.done()
    assert int((await asyncio.wait_for(long, 2))[0]) == 2
    assert model.calls == [(1, 3), (1, 100)]
    await batcher.stop()


async def test_a_run_that_fails_fails_only_the_texts_not_yet_answered() -> None:
    class FailsOnLongRows(EchoModel):
        def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            if ids.shape[1] > 50:
                raise RuntimeError("out of memory")
            return super().__call__(ids, mask)

    batcher = make(FailsOnLongRows(), run_overhead_tokens=8)
    short, long = batcher.submit(rows((1, 3), (2, 100)))
    assert int((await asyncio.wait_for(short, 2))[0]) == 1
    with pytest.raises(InferenceFailed):
        await asyncio.wait_for(long, 2)
    await batcher.stop()


def run_cost(lengths: list[int], runs: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(run) * max(lengths[i] for i in run) for run in runs)


def test_plan_runs_splits_where_padding_costs_more_than_a_call() -> None:
    lengths = [3, 100, 4, 90, 5, 3, 120, 6]
    runs = plan_runs(lengths, overhead_tokens=8)
    assert sorted(i for run in runs for i in run) == list(range(8))
    assert [[lengths[i] for i in run] for run in runs] == [[3, 3, 4, 5, 6], [90], [100], [120]]
    # a call as dear as a thousand tokens: everything in one run, shortest first
    assert plan_runs(lengths, overhead_tokens=1000) == [sorted(range(8), key=lengths.__getitem__)]
    # free calls: one run per distinct length
    assert [[lengths[i] for i in run] for run in plan_runs(lengths, 0)] == [
        [3, 3],
        [4],
        [5],
        [6],
        [90],
        [100],
        [120],
    ]
    assert plan_runs([], 8) == []


def test_plan_runs_finds_the_cheapest_cut() -> None:
    """Against every cut of the sorted texts into contiguous runs (2^(n-1) of them)."""
    rng = random.Random(7)
    for _ in range(200):
        lengths = [rng.choice([rng.randint(2, 12), rng.randint(20, 128)]) for _ in range(8)]
        overhead = rng.choice([0, 4, 8, 32, 256])
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        cheapest = min(
            run_cost(lengths, cut_at(order, mask), overhead)
            for mask in range(2 ** (len(order) - 1))
        )
        runs = plan_runs(lengths, overhead)
        assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
        assert run_cost(lengths, runs, overhead) == cheapest


def cut_at(order: list[int], mask: int) -> list[list[int]]:
    runs = [[order[0]]]
    for position, index in enumerate(order[1:]):
        if mask >> position & 1:
            runs.append([])
        runs[-1].append(index)
    return runs


def test_pad_builds_ids_and_mask() -> None:
    ids, mask = pad(rows((5, 2), (6, 4)), pad_id=9)
    assert ids.tolist() == [[5, 5, 9, 9], [6, 6, 6, 6]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
