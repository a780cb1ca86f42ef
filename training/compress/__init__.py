"""Compression of a multilingual encoder into a small monolingual student (see pipeline.py)."""

STAGES = ("layers", "prune", "truncate", "vocab", "heads", "export")
MODEL_STAGES = STAGES[:4]  # the stages that change the encoder; each has a results row
