"""Compression of a multilingual encoder into a small monolingual student (see pipeline.py)."""

STAGES = ("layers", "prune", "truncate", "vocab", "heads", "export")
