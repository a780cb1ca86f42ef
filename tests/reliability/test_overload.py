"""Many times the measured capacity for 60 s from 128 concurrent clients: only 200, 429 (with
Retry-After) and 503; every request answered before its deadline; every 200 whole and in order;
resident memory flat; and latency back to normal once the load drops."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.bundles import build_bundle
from tests.reliability.server import Server, record, serve

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("SMALLGLOT_OVERLOAD_SECONDS", "60"))
DEADLINE_S = 20.0
TEXTS = [
    "Sản phẩm này rất tốt, giao hàng nhanh và đóng gói cẩn thận, tôi rất hài lòng " * 2,
    "Phục vụ quá chậm, món ăn nguội và nhân viên không thân thiện chút nào " * 2,
]


def latencies(base: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        for i in range(n):
            started = time.perf_counter()
            client.post("/v1/sentiment", json={"text": TEXTS[i % 2]}).raise_for_status()
            out.append(time.perf_counter() - started)
    return out


async def closed_loop(base: str, clients: int, seconds: float) -> int:
    done = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=DEADLINE_S) as client:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                (await client.post("/v1/sentiment", json={"text": TEXTS[0]})).raise_for_status()
                done += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return done


async def hammer(
    base: str,
    clients: int,
    seconds: float,
    expected: list[int],
    statuses: Counter[str],
    problems: list[str],
) -> int:
    """`clients` keep-alive connections, each sending its next request as soon as the last
    is answered (a refusal comes back at once, so refused clients come back at once too).
    Raw HTTP/1.1: an HTTP library's own CPU cost would cap the load on a small machine."""
    host, port = base.removeprefix("http://").split(":")
    sent = 0
    stop = time.monotonic() + seconds

    async def client(seed: int) -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, int(port))
        i = seed
        while time.monotonic() < stop:
            texts = [TEXTS[(i + k) % 2] for k in range(1 + i % 3)]
            body = json.dumps({"texts": texts}).encode()
            writer.write(
                b"POST /v1/sentiment HTTP/1.1\r\nHost: t\r\nContent-Type: "
                b"application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            sent += 1
            try:
                status, headers, payload = await asyncio.wait_for(read(reader), DEADLINE_S)
            except TimeoutError:
                statuses["timeout"] += 1
                return
            statuses[str(status)] += 1
            if status == 200:
                tokens = [r["tokens"] for r in json.loads(payload)["results"]]
                if tokens != [expected[(i + k) % 2] for k in range(len(texts))]:
                    problems.append(f"request {i}: results {tokens} do not match its texts")
            elif status == 429 and b"retry-after" not in headers:
                problems.append("429 without Retry-After")
            i += clients
        writer.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return sent


async def read(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    status = int((await reader.readline()).split()[1])
    headers = b""
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        headers += line.lower()
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, headers, await reader.readexactly(length)


def sample_memory(
    server: Server, stop: threading.Event, samples: list[tuple[float, float]]
) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, server.rss_mb()))
        time.sleep(1)


def test_overload(tmp_path: Path) -> None:
    models = tmp_path / "models"
    build_bundle(
        models,
        "vi-sentiment",
        "sentiment",
        "vi",
        ["negative", "neutral", "positive"],
        max_length=128,
        hidden=256,
        layers=4,
    )
    with serve(
        models,
        max_batch_size=4,
        inference_workers=1,
        max_queue_texts=32,
        max_texts_per_request=8,
        request_timeout_s=10,
    ) as server:
        expected = [
            r["tokens"]
            for r in httpx.post(
                f"{server.base}/v1/sentiment", json={"texts": TEXTS}, timeout=10
            ).json()["results"]
        ]
        latencies(server.base, 10)  # warm
        baseline = latencies(server.base, 40)
        done = asyncio.run(closed_loop(server.base, 8, 5.0))
        capacity = done / 5.0
        statuses: Counter[str] = Counter()
        problems: list[str] = []
        memory: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_memory, args=(server, stop, memory))
        sampler.start()
        started = time.monotonic()
        sent = asyncio.run(hammer(server.base, 128, SECONDS, expected, statuses, problems))
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        after = latencies(server.base, 40)
        in_flight = server.metric("smallglot_in_flight_requests")
    first = statistics.mean(m for t, m in memory if t < 10)
    last = statistics.mean(m for t, m in memory if t >= memory[-1][0] - 10)
    figures = {
        "capacity_req_s": round(capacity, 1),
        "offered_req_s": round(sent / SECONDS, 1),
        "seconds": SECONDS,
        "requests": sent,
        "answered_s": round(wall, 1),
        "statuses": dict(statuses),
        "problems": len(problems),
        "rss_first_10s_mb": round(first, 1),
        "rss_last_10s_mb": round(last, 1),
        "rss_growth": round(last / first - 1, 4),
        "p50_ms_before": round(1000 * statistics.median(baseline), 1),
        "p50_ms_after": round(1000 * statistics.median(after), 1),
    }
    record("overload", figures)
    assert not problems, problems[:5]
    assert set(statuses) <= {"200", "429", "503"}, statuses
    assert sum(statuses.values()) == sent  # every request answered, none past its deadline
    assert statuses["429"] > 0  # the overload was real
    assert sent / SECONDS > 5 * capacity
    assert statuses["200"] > 0
    assert last / first - 1 < 0.10
    assert statistics.median(after) < max(
        3 * statistics.median(baseline), statistics.median(baseline) + 0.05
    )
    assert in_flight == 1
