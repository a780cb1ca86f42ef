"""Compression of a multilingual encoder into a small monolingual student (see pipeline.py)."""

STAGES = ("layers", "prune", "truncate", "task", "vocab", "heads", "export")
MODEL_STAGES = STAGES[:5]  # the stages that change the encoder; each has a results row
SHARED_STAGES = ("layers", "prune")  # independent of width and vocabulary: a `base` run's serve
