"""Process signals -> the running app: drain on SIGTERM/SIGINT, reload bundles on SIGHUP.

The server (app/__main__.py) owns the signals; the app registers what to do. Callbacks run on
the app's event loop, never inside the signal handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Lifecycle:
    loop: asyncio.AbstractEventLoop | None = None
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    on_reload: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    _tasks: set[asyncio.Future[object]] = field(default_factory=set)

    def drain(self) -> None:
        self._call(lambda: [hook() for hook in self.on_drain])

    def reload(self) -> None:
        def start() -> None:
            for hook in self.on_reload:
                task = asyncio.ensure_future(hook())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        self._call(start)

    def _call(self, action: Callable[[], object]) -> None:
        if self.loop is None or self.loop.is_closed():
            log.warning("signal ignored: the app is not running")
            return
        self.loop.call_soon_threadsafe(action)


LIFECYCLE = Lifecycle()
