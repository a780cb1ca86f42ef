"""Typed dependencies: routes ask for what they need; tests build apps with their own.

One `async` dependency carries the service's parts: FastAPI resolves it inline, once per
request, instead of solving (or thread-hopping for) one dependency per part."""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request

from app.metrics import Metrics
from app.registry import Registry
from app.settings import Settings


@dataclass(frozen=True)
class Service:
    settings: Settings
    registry: Registry
    metrics: Metrics
    tokenizer_pool: Executor | None
    draining: threading.Event = field(default_factory=threading.Event)


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]

# the `{language}` of the per-language routes
LanguagePath = Annotated[
    str, Path(description="BCP-47 or ISO 639-3 code, e.g. `sw`, `swh`, `mt` or `slk`.")
]
