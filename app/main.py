"""The FastAPI application: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.deps import Service
from app.api.routes import health, models, predict
from app.errors import install_error_handlers
from app.metrics import Metrics
from app.middleware import EdgeMiddleware
from app.registry import Registry
from app.settings import Settings, get_settings

DESCRIPTION = """
Text classification for low-resource languages from small distilled models.

* `POST /v1/sentiment`: Vietnamese sentiment (negative / neutral / positive).
* `POST /v1/classify/{language}`: per-language classification (e.g. topics).

Errors share one shape: `{"error": {"code", "message", "details"}, "request_id"}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    metrics = Metrics()
    registry = Registry(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(settings.tokenizer_threads, thread_name_prefix="tokenize")
        app.state.service = Service(settings, registry, metrics, pool)
        await registry.load()
        try:
            yield
        finally:
            app.state.shutting_down = True
            await registry.stop(drain_timeout_s=settings.request_timeout_s)
            pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="smallglot",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = Service(settings, registry, metrics, None)
    app.state.shutting_down = False
    install_error_handlers(app)
    for module in (predict, models, health):
        app.include_router(module.router)
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics, api=app)
    return app
