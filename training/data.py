"""Reading the project's data: labelled tables (CSV/TSV) and plain text lines.

The data root is `../shared/data` beside the checkout unless `$SMALLGLOT_DATA` or a
`--data-root` flag says otherwise; nothing is downloaded or copied into the project."""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(1 << 24)


def data_root(override: Path | None = None) -> Path:
    if override is not None:
        return override
    env = os.environ.get("SMALLGLOT_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass
class Table:
    texts: list[str]
    labels: list[str]
    path: Path


def read_table(
    path: Path,
    text_column: str = "text",
    label_column: str | None = "label",
    label_map: dict[str, str] | None = None,
) -> Table:
    """A CSV (`.csv`) or tab-separated (other suffixes) file with a header row."""
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(
            handle,
            delimiter=delimiter,
            quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE,
        )
        columns = reader.fieldnames or []
        for column in (text_column, label_column):
            if column is not None and column not in columns:
                raise ValueError(f"{path.name} has no column {column!r} (columns: {columns})")
        texts, labels = [], []
        for row in reader:
            texts.append(row[text_column])
            if label_column is not None:
                label = row[label_column]
                labels.append(label_map.get(label, label) if label_map else label)
    return Table(texts, labels, path)


def read_lines(path: Path, limit: int | None = None) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    out = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                out.append(line.strip())
                if limit is not None and len(out) >= limit:
                    break
    return out


def read_corpus(spec: str, limit: int | None = None) -> list[str]:
    """A text file (a line each) or `TABLE:COLUMN`, one column of a CSV/TSV (e.g. the
    Vietnamese side of a parallel table)."""
    path = Path(spec)
    if not path.is_file() and ":" in spec:
        table, column = spec.rsplit(":", 1)
        texts = [t.strip() for t in read_table(Path(table), column, None).texts if t.strip()]
        return texts[:limit] if limit is not None else texts
    return read_lines(path, limit)


def normalise(text: str, lowercase: bool = False) -> str:
    """NFC, and lowercase when asked: what a bundle's `preprocessing` does to its input."""
    text = unicodedata.normalize("NFC", text)
    return text.lower() if lowercase else text
