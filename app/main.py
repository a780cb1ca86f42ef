"""The FastAPI application: `uvicorn --factory app.main:create_app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.deps import Service
from app.api.routes import admin, health, models, predict, tag
from app.api.schemas import document_limits
from app.errors import install_error_handlers
from app.lifecycle import LIFECYCLE
from app.logs import configure_logging
from app.metrics import Metrics
from app.middleware import EdgeMiddleware
from app.registry import Registry
from app.settings import Settings, get_settings

DESCRIPTION = """
Text classification for low-resource languages from small distilled models.

* `POST /v1/sentiment`: Vietnamese sentiment (negative / neutral / positive).
* `POST /v1/classify/{language}`: per-language classification (e.g. topics).
* `POST /v1/tag/{language}`: token classification (part-of-speech tags, named entities).

Errors share one shape: `{"error": {"code", "message", "details"}, "request_id"}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    registry = Registry(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(settings.tokenizer_threads, thread_name_prefix="tokenize")
        service = Service(settings, registry, metrics, pool)
        app.state.service = service
        await registry.load()
        LIFECYCLE.loop = asyncio.get_running_loop()
        LIFECYCLE.on_drain.append(service.draining.set)
        LIFECYCLE.on_reload.append(registry.reload)
        try:
            yield
        finally:
            service.draining.set()
            LIFECYCLE.on_drain.remove(service.draining.set)
            LIFECYCLE.on_reload.remove(registry.reload)
            await registry.stop(drain_timeout_s=settings.request_timeout_s)
            pool.shutdown(wait=False, cancel_futures=True)

    # /docs and /redoc with Swagger UI's and ReDoc's assets served by the service itself
    # (under /static-offline-docs), so the pages work where no CDN can be reached
    app = FastAPIOffline(
        title="smallglot",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = Service(settings, registry, metrics, None)
    install_error_handlers(app)
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_limits(plain_openapi(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    for module in (predict, tag, models, health, admin):
        app.include_router(module.router)
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics, api=app)
    return app
