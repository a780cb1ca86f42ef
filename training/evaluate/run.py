"""Score a model on labelled files: accuracy, macro-F1, confusion matrix, token efficiency.

Binary datasets (gold labels a strict subset of the model's labels, e.g. no `neutral`) are
scored by dropping the logits of the absent labels before the argmax, as the KDA paper does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training.data import read_table
from training.evaluate.metrics import scores
from training.evaluate.predictors import Predictor


def evaluate_file(
    predictor: Predictor,
    path: Path,
    text_column: str = "text",
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
    binary: str = "auto",
    batch_size: int = 64,
) -> dict[str, Any]:
    table = read_table(path, text_column, label_column, label_map)
    labels = predictor.labels
    unknown = sorted(set(table.labels) - set(labels))
    if unknown:
        raise ValueError(
            f"{path.name} has labels {unknown} the model does not know "
            f"({labels}); map them with --label-map"
        )
    present = sorted({labels.index(g) for g in table.labels})
    restrict = binary == "drop-absent" or (binary == "auto" and len(present) < len(labels))
    ids = predictor.token_ids(table.texts)
    lengths = np.array([len(x) for x in ids])
    cut = [x[: predictor.max_length] for x in ids]
    order = np.argsort([len(x) for x in cut], kind="stable")
    logits = np.zeros((len(cut), len(labels)), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=path.name, unit="batch", leave=False):
        rows = order[start : start + batch_size]
        logits[rows] = predictor.logits([cut[i] for i in rows])
    if restrict:
        masked = np.full_like(logits, -np.inf)
        masked[:, present] = logits[:, present]
        logits = masked
    gold = np.array([labels.index(g) for g in table.labels])
    result = scores(gold, logits.argmax(1), labels)
    result.update(
        {
            "dataset": path.stem,
            "file": str(path),
            "scored_labels": [labels[i] for i in present] if restrict else labels,
            "tokens_per_text": {
                "mean": round(float(lengths.mean()), 2),
                "p95": float(np.percentile(lengths, 95)),
            },
            "truncated_share": round(float((lengths > predictor.max_length).mean()), 4),
            "max_length": predictor.max_length,
        }
    )
    return result
