"""Batches for every training method: length-grouped order (little padding, a new mix every
epoch) and right padding, as the service pads."""

from __future__ import annotations

import random


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort within windows of 50 batches by length, then shuffle the batches: little
    padding, yet a different mix every epoch."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
