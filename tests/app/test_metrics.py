"""/metrics moves as requests flow: counters, histograms, and a queue depth that rises while
texts wait for their batch."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.conftest import make_client


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_after_requests(built: dict[str, Path]) -> None:
    root = built["vi-sentiment"].parent
    with make_client(root, max_texts_per_request=8) as client:
        before = client.get("/metrics").text
        client.post("/v1/sentiment", json={"texts": ["tốt", "không tốt " * 30]})
        client.post("/v1/sentiment", json={"text": ""})
        client.post("/v1/sentiment", json={"texts": ["a"] * 9})
        after = client.get("/metrics").text
    route = "/v1/sentiment"
    ok = {"route": route, "method": "POST", "status": "200"}
    assert (
        sample(after, "smallglot_requests_total", **ok)
        == sample(before, "smallglot_requests_total", **ok) + 1
    )
    assert sample(after, "smallglot_requests_total", route=route, status="422") == 2
    assert sample(after, "smallglot_request_duration_seconds_count", route=route) == 3
    model = {"model": "vi-sentiment"}
    assert sample(after, "smallglot_tokenization_seconds_count", **model) == 1
    assert sample(after, "smallglot_input_tokens_count", **model) == 2
    assert sample(after, "smallglot_input_tokens_sum", **model) > 32
    assert sample(after, "smallglot_truncated_texts_total", **model) == 1
    assert sample(after, "smallglot_queue_wait_seconds_count", **model) == 2
    assert sample(after, "smallglot_batch_size_sum", **model) == 2
    assert sample(after, "smallglot_inference_seconds_count", **model) >= 1
    assert sample(after, "smallglot_batch_padded_tokens_sum", **model) >= 32
    assert 0 < sample(after, "smallglot_batch_padding_efficiency_sum", **model) <= 2
    assert (
        sample(
            after,
            "smallglot_model_info",
            model="vi-sentiment",
            variant="int8",
            provider="CPUExecutionProvider",
            task="sentiment",
            language="vi",
        )
        == 1
    )
    assert sample(after, "smallglot_model_ready", **model) == 1
    assert sample(after, "smallglot_in_flight_requests") == 1  # the scrape itself


def test_rejections_are_counted_by_reason(models_dir: Path, client: TestClient) -> None:
    client.post("/v1/sentiment", content=b"x", headers={"content-type": "text/plain"})
    client.post("/v1/classify/mt", json={"text": "x"})
    text = client.get("/metrics").text
    assert sample(text, "smallglot_rejected_requests_total", reason="unsupported_media_type") >= 1
    assert sample(text, "smallglot_rejected_requests_total", reason="not_ready") >= 1
    assert sample(text, "smallglot_model_ready", model="mt-broken") == 0


async def test_queue_depth_rises_while_requests_wait(built: dict[str, Path]) -> None:
    settings = Settings(
        models_dir=built["vi-sentiment"].parent,
        models=["vi-sentiment"],
        max_wait_ms=400,
        flush_when_idle=False,
        max_batch_size=64,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            waiting = [
                asyncio.create_task(client.post("/v1/sentiment", json={"text": "tốt"}))
                for _ in range(5)
            ]
            await asyncio.sleep(0.2)  # inside the 400 ms window: nothing has run yet
            during = (await client.get("/metrics")).text
            responses = await asyncio.gather(*waiting)
            after = (await client.get("/metrics")).text
    assert sample(during, "smallglot_queue_depth", model="vi-sentiment") == 5
    assert sample(during, "smallglot_in_flight_requests") == 6
    assert all(r.status_code == 200 for r in responses)
    assert sample(after, "smallglot_queue_depth", model="vi-sentiment") == 0
    assert sample(after, "smallglot_batch_size_count", model="vi-sentiment") == 1
    assert sample(after, "smallglot_batch_size_sum", model="vi-sentiment") == 5
