"""Idempotent imports: each import writes `import.json` with the sha256 of its sources and of
every file it wrote. A repeat import whose sources are unchanged and whose outputs still
match is skipped; anything else is rebuilt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

RECORD = "import.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(sources: list[Path]) -> dict[str, str]:
    return {p.name: sha256(p) for p in sources}


def is_current(out: Path, sources: dict[str, str]) -> bool:
    record = out / RECORD
    if not record.is_file():
        return False
    data = json.loads(record.read_text())
    if data.get("sources") != sources:
        return False
    return all(
        (out / rel).is_file() and sha256(out / rel) == digest
        for rel, digest in data.get("files", {}).items()
    )


def write_record(out: Path, sources: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    files = {
        str(p.relative_to(out)): sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != RECORD
    }
    data = {"sources": sources, "files": files, **extra}
    (out / RECORD).write_text(json.dumps(data, indent=2))
    return data
