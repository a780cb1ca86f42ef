"""Every clone carries the committed model weights forever, so their size has a budget."""

from __future__ import annotations

from pathlib import Path

SOURCES = Path(__file__).resolve().parents[2] / "models" / "sources"


def test_committed_topic_students_fit_their_size_budget() -> None:
    """All topic students together stay within 150 MB (fp16 sources, or int8 rows where the
    rebuilt bundle passes its parity gate), the heads stored beside a body trained for its
    task included."""
    weights = sorted(SOURCES.glob("*-topic*/*.safetensors"))
    assert len({w.parent for w in weights}) >= 8  # a default and a tiny student per language
    total = sum(w.stat().st_size for w in weights)
    assert total <= 150_000_000, {str(w.relative_to(SOURCES)): w.stat().st_size for w in weights}
