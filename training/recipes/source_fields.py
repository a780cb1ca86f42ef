"""Set fields of a packed model's sources (`source.json`) in place, for the recipes that build
variants of one student (a preprocessing, a logit shift) without retraining it.

    python3 training/recipes/source_fields.py SOURCES_DIR '{"logit_shift": [0.1, 0, -0.1]}'

The fields replace the same top-level keys and leave every other key as it was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def set_fields(sources: Path, fields: dict[str, Any]) -> None:
    path = sources / "source.json"
    if not path.is_file():
        raise SystemExit(f"{sources}: no source.json (not a packed model's sources)")
    source = json.loads(path.read_text(encoding="utf-8")) | fields
    path.write_text(json.dumps(source, indent=2, ensure_ascii=False), encoding="utf-8")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: source_fields.py SOURCES_DIR JSON_OBJECT")
    fields = json.loads(argv[1])
    if not isinstance(fields, dict):
        raise SystemExit(f"fields must be a JSON object, got {argv[1]!r}")
    set_fields(Path(argv[0]), fields)


if __name__ == "__main__":
    main(sys.argv[1:])
