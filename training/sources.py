"""Committed model sources (`models/sources/<name>/`) and whether a built bundle is current.

Kept free of torch so that `python -m training build --if-changed` answers in well under a
second when nothing changed: later service starts stay fast."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

DIGEST_KEY = "sources_sha256"


def digest(source_dir: Path) -> str:
    """One sha256 over every file of the sources (names and contents), and of the sources of
    the body they name (a task head's bundle is stale when its student changes too)."""
    if not source_dir.is_dir():
        raise FileNotFoundError(f"model sources {source_dir} do not exist")
    total = hashlib.sha256()
    for path in sorted(p for p in source_dir.rglob("*") if p.is_file()):
        total.update(str(path.relative_to(source_dir)).encode() + b"\0")
        total.update(hashlib.sha256(path.read_bytes()).digest())
    body = json.loads((source_dir / "source.json").read_text()).get("body")
    if body:
        total.update(b"body\0" + digest(source_dir / body).encode())
    return total.hexdigest()


def bundle_is_current(source_dir: Path, bundle_dir: Path) -> bool:
    manifest = bundle_dir / "manifest.json"
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text()).get("provenance", {}).get(DIGEST_KEY)
    return recorded == digest(source_dir)


def bundle_path(source_dir: Path) -> Path:
    """Where the sources' bundle goes unless told otherwise: `bundle.out` of source.json."""
    source = json.loads((source_dir / "source.json").read_text())
    return Path(source["bundle"]["out"])
