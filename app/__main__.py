"""`python -m app`: run the service under uvicorn.

SIGTERM/SIGINT: the app starts draining at once (/readyz 503, new predictions 503
`shutting_down`), keeps answering what it accepted, and after SMALLGLOT_SHUTDOWN_DELAY_S closes
the listener; uvicorn then waits for requests in flight and the batchers finish their queues.
A drained shutdown exits 0 (a bare uvicorn re-raises the signal, which orchestrators report as
a crash). SIGHUP reloads the bundles."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn

from app.lifecycle import LIFECYCLE
from app.settings import get_settings


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, shutdown_delay_s: float) -> None:
        super().__init__(config)
        self.shutdown_delay_s = shutdown_delay_s
        self._draining = False

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = signal.signal(signal.SIGHUP, lambda *_: LIFECYCLE.reload())
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()
                signal.signal(signal.SIGHUP, previous)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self.shutdown_delay_s <= 0:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._draining = True
        LIFECYCLE.drain()
        timer = threading.Timer(self.shutdown_delay_s, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Run the HTTP service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    settings = get_settings()
    config = uvicorn.Config(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 1,
    )
    GracefulServer(config, settings.shutdown_delay_s).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
