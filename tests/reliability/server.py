"""The service in a subprocess on a loopback port, for tests that need a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.base}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


@contextmanager
def serve(models_dir: Path, **settings: object) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "SMALLGLOT_MODELS_DIR": str(models_dir), "SMALLGLOT_LOG_LEVEL": "warning"}
    env.update({f"SMALLGLOT_{k.upper()}": str(v) for k, v in settings.items()})
    process = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port)], env=env)
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def record(name: str, figures: dict[str, Any]) -> None:
    """Write measured figures to $SMALLGLOT_REPORTS/<name>.json when that is set."""
    folder = os.environ.get("SMALLGLOT_REPORTS")
    print(f"{name}: {json.dumps(figures)}")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
