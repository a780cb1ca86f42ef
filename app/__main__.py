"""`python -m app`: run the service under uvicorn.

Unlike a bare `uvicorn` command, a SIGTERM/SIGINT that ends in a clean, drained shutdown
exits with status 0 (uvicorn re-raises the signal, which orchestrators report as a crash)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Generator

import uvicorn

from app.settings import get_settings


class GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


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
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 1,
    )
    GracefulServer(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
