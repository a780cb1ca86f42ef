"""Parity between PyTorch and every exported ONNX variant. Logits are compared over a grid of
batch sizes and lengths built from real token sequences (the grid cuts texts to 4 and 16
tokens to exercise the shapes); labels are compared on the texts at their full length (up to
the grid's longest), since
a text cut to 4 tokens is a near-tie that says nothing about the labels users get (for a
token-level model, the label of every real token). Every
mismatch is collected, then one error names them all: a partial report is worth more than the
first failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from training.batches import length_sorted_batches
from training.export.onnx import ExportSpec


class ParityError(ValueError):
    """A variant disagrees with PyTorch beyond its tolerance (the CLI reports it as an error)."""


@dataclass
class VariantParity:
    variant: str
    cases: int = 0
    texts: int = 0
    max_abs_diff: float = 0.0
    agreeing: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def label_agreement(self) -> float:
        return self.agreeing / self.texts if self.texts else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cases": self.cases,
            "texts": self.texts,
            "max_abs_diff": round(self.max_abs_diff, 8),
            "label_agreement": round(self.label_agreement, 6),
        }


def grid_batches(
    sequences: list[list[int]], spec: ExportSpec, pad_id: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(case name, ids, mask) for each batch size x length, cycling through the sequences."""
    if not sequences:
        raise ValueError("parity needs at least one token sequence")
    batches = []
    offset = 0
    for size, length in product(spec.batch_sizes, spec.lengths):
        rows = [sequences[(offset + i) % len(sequences)][:length] for i in range(size)]
        offset += size
        width = max(len(r) for r in rows)
        ids = np.full((size, width), pad_id, dtype=np.int64)
        mask = np.zeros((size, width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        batches.append((f"batch={size} length<={length}", ids, mask))
    return batches


def _feeds(names: tuple[str, ...], ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: values[name] for name in names}


def full_length_batches(
    sequences: list[list[int]], pad_id: int, longest: int, size: int = 8
) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """(row indices, ids, mask) for every sequence at its full length (up to `longest`
    tokens), in length-sorted batches, as the service batches them."""
    sequences = [s[:longest] for s in sequences]
    out = []
    for rows in length_sorted_batches(sequences, size):
        width = max(len(sequences[i]) for i in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(rows):
            ids[r, : len(sequences[i])] = sequences[i]
            mask[r, : len(sequences[i])] = 1
        out.append((rows, ids, mask))
    return out


def _labels(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The predicted label of each text, or (token-level logits) of each real token."""
    predicted = logits.argmax(-1)
    return predicted[mask.astype(bool)] if predicted.ndim == 2 else predicted


def check_parity(
    model: nn.Module,
    variants: dict[str, Path],
    sequences: list[list[int]],
    spec: ExportSpec,
    pad_id: int,
) -> dict[str, VariantParity]:
    """Compare each variant's logits with PyTorch's; raise ParityError listing every mismatch."""
    model.eval()
    batches = grid_batches(sequences, spec, pad_id)
    full = full_length_batches(sequences, pad_id, max(spec.lengths))
    reference: list[np.ndarray] = []
    labels: list[np.ndarray] = []  # per full-length batch: each text's (or real token's) label
    with torch.no_grad():
        for _, ids, mask in batches:
            feeds = {k: torch.from_numpy(v) for k, v in _feeds(spec.input_names, ids, mask).items()}
            reference.append(model(**feeds).logits.float().numpy())
        for _, ids, mask in full:
            feeds = {k: torch.from_numpy(v) for k, v in _feeds(spec.input_names, ids, mask).items()}
            labels.append(_labels(model(**feeds).logits.numpy(), mask))
    reports = {}
    for variant, path in variants.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        report = VariantParity(variant)
        for (case, ids, mask), expected in zip(batches, reference, strict=True):
            got = session.run([spec.output_name], _feeds(spec.input_names, ids, mask))[0]
            diff = float(np.abs(got - expected).max())
            report.cases += 1
            report.max_abs_diff = max(report.max_abs_diff, diff)
            limit = (
                spec.atol if variant == "fp32" else spec.fp16_atol if variant == "fp16" else None
            )
            if limit is not None and diff > limit:
                report.mismatches.append(f"{variant} {case}: max |diff| {diff:.3g} > {limit:g}")
        for (_, ids, mask), expected_labels in zip(full, labels, strict=True):
            got = session.run([spec.output_name], _feeds(spec.input_names, ids, mask))[0]
            got_labels = _labels(got, mask)
            report.texts += len(got_labels)
            report.agreeing += int((got_labels == expected_labels).sum())
        if variant != "fp32" and report.label_agreement < spec.min_variant_agreement:
            report.mismatches.append(
                f"{variant}: label agreement {report.label_agreement:.3f} < "
                f"{spec.min_variant_agreement:g}"
            )
        reports[variant] = report
    problems = [m for r in reports.values() for m in r.mismatches]
    if problems:
        raise ParityError(f"{len(problems)} parity failures:\n  " + "\n  ".join(problems))
    return reports
