"""Accuracy, macro-F1 and the confusion matrix, from label indices."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion(gold: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (gold, pred), 1)
    return matrix


def scores(gold: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Macro-F1 averages over the classes present in `gold` (a class that never occurs in
    the gold labels of a binary set is not scored)."""
    matrix = confusion(gold, pred, len(labels))
    present = [i for i in range(len(labels)) if matrix[i].sum() > 0]
    f1 = {}
    for i in present:
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i].sum()
        f1[labels[i]] = 2 * precision * recall / (precision + recall) if tp else 0.0
    recalls = [matrix[i, i] / matrix[i].sum() for i in present]
    return {
        "n": len(gold),
        "accuracy": float((gold == pred).mean()) if len(gold) else 0.0,
        "macro_f1": float(np.mean(list(f1.values()))) if f1 else 0.0,
        "macro_recall": float(np.mean(recalls)) if recalls else 0.0,
        "f1_per_label": {k: round(float(v), 4) for k, v in f1.items()},
        "labels": labels,
        "confusion": matrix.tolist(),
    }
