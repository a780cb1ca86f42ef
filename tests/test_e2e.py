"""The service as users run it: uvicorn in a subprocess on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port

pytestmark = pytest.mark.slow


def test_uvicorn_serves_concurrent_clients(built: dict[str, Path]) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SMALLGLOT_MODELS_DIR": str(built["vi-sentiment"].parent),
        "SMALLGLOT_MAX_WAIT_MS": "5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "service did not become ready in 60 s"
            time.sleep(0.2)

        texts = [f"{'tốt ' * (i % 7)}khách {i}" for i in range(40)]

        async def drive() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                async def one(i: int) -> httpx.Response:
                    chosen = texts[i % 40 : i % 40 + 1 + i % 5]
                    return await client.post("/v1/sentiment", json={"texts": chosen})

                return await asyncio.gather(*(one(i) for i in range(200)))

        responses = asyncio.run(drive())
        singles = {
            t: httpx.post(f"{base}/v1/sentiment", json={"text": t}).json()["results"][0]
            for t in texts
        }
        for i, response in enumerate(responses):
            assert response.status_code == 200, response.text
            chosen = texts[i % 40 : i % 40 + 1 + i % 5]
            results = response.json()["results"]
            assert len(results) == len(chosen)
            for text, result in zip(chosen, results, strict=True):
                assert result["tokens"] == singles[text]["tokens"]
                assert result["label"] == singles[text]["label"]
        metrics = httpx.get(f"{base}/metrics").text
        assert (
            'smallglot_requests_total{method="POST",route="/v1/sentiment",status="200"}' in metrics
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0
