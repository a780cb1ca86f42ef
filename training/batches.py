"""Batches for every training method: length-grouped order (little padding, a new mix every
epoch), length-sorted order for inference, and right padding, as the service pads."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm


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


def length_sorted_batches(
    ids: Sequence[Sequence[int]], batch_size: int, desc: str | None = None
) -> Iterator[list[int]]:
    """Row indices in batches of similar length, shortest first: inference pads little, and
    each result goes back to its row by index. A progress bar named `desc` where it is given
    (a teacher labelling a whole corpus takes minutes)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=desc is None):
        yield order[start : start + batch_size]


def pad_rows(
    ids: list[list[int]], rows: list[int] | np.ndarray, pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask for the sequences `rows` of `ids`."""
    width = max(len(ids[i]) for i in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        out[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = 1
    return out.to(device), mask.to(device)
