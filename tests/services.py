"""The service as a separate process on a loopback port, for tests that talk to it over HTTP
(the Prometheus integration, the browser, the end-to-end checks)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code in ok:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@contextmanager
def running_service(models: Path) -> Iterator[str]:
    """`python -m app` serving `models`; yields its base URL once /healthz answers."""
    port = free_port()
    env = {**os.environ, "SMALLGLOT_MODELS_DIR": str(models), "SMALLGLOT_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz", 60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def system_binary(name: str, make_target: str, required_by: str) -> str:
    """The path of a Debian-packaged tool a test needs: missing, it fails the test where the
    environment variable `required_by` is set (CI), else skips it naming `make_target`."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (make {make_target} installs Debian's package)"
        if os.environ.get(required_by):
            pytest.fail(message)
        pytest.skip(message)
    return found
