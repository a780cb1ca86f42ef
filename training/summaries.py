"""How commands report: a summary printed as JSON, and kept as a file when asked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def is_main_process() -> bool:
    """False on every process but the first of a `torchrun` / `accelerate launch` run (which
    set RANK): they train their share and stay quiet."""
    return os.environ.get("RANK", "0") == "0"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def emit(summary: dict[str, Any], report: Path | None = None) -> None:
    """Print a command's summary, and keep it as a JSON report when asked to (the main
    process only)."""
    if not is_main_process():
        return
    print(json.dumps(summary, indent=2))
    if report:
        write_json(report, summary)
