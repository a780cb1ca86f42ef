"""Queue limits and deadlines as a client sees them: 429 with Retry-After, 504 with a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from app.main import create_app
from app.settings import Settings


@asynccontextmanager
async def serve(built: dict[str, Path], **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        models_dir=built["vi-sentiment"].parent, models=["vi-sentiment"], **overrides
    )  # type: ignore[arg-type]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_full_queue_answers_429_at_once(built: dict[str, Path]) -> None:
    async with serve(
        built,
        max_texts_per_request=2,
        max_queue_texts=2,
        max_wait_ms=500,
        flush_when_idle=False,
        max_batch_size=64,
        retry_after_s=2,
    ) as client:
        first = asyncio.create_task(client.post("/v1/sentiment", json={"texts": ["a", "b"]}))
        await asyncio.sleep(0.1)  # the first request now fills the queue, waiting for its batch
        refused = await client.post("/v1/sentiment", json={"text": "c"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        body = refused.json()["error"]
        assert body["code"] == "queue_full"
        assert body["details"] == {"queued": 2, "limit": 2}
        assert not first.done()  # refused at once, not after the batch ran
        accepted = await first
        assert accepted.status_code == 200
        assert len(accepted.json()["results"]) == 2
        metrics = (await client.get("/metrics")).text
        assert 'smallglot_rejected_requests_total{reason="queue_full"} 1.0' in metrics


async def test_deadline_answers_504_naming_the_wait(built: dict[str, Path]) -> None:
    async with serve(
        built, max_wait_ms=1000, flush_when_idle=False, max_batch_size=64, request_timeout_s=0.1
    ) as client:
        response = await client.post("/v1/sentiment", json={"text": "chậm"})
        assert response.status_code == 504
        error = response.json()["error"]
        assert error["code"] == "deadline_exceeded"
        assert "did not answer within 0.1 s" in error["message"]
        metrics = (await client.get("/metrics")).text
        assert 'smallglot_queue_depth{model="vi-sentiment"} 0.0' in metrics


async def test_inline_and_threaded_tokenization_answer_alike(built: dict[str, Path]) -> None:
    """Short requests are tokenized on the event loop, long ones in the tokenizer threads:
    the answers do not depend on which."""
    body = {"texts": ["tốt lắm", "rất tệ " * 30, "Bình thường."]}
    answers = []
    for chars in (10_000, 0):  # everything inline, then everything in the threads
        async with serve(built, inline_tokenize_chars=chars) as client:
            response = await client.post("/v1/sentiment", json=body)
            assert response.status_code == 200
            answers.append(response.json()["results"])
    assert answers[0] == answers[1]
