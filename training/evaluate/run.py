"""Score a model on labelled files: accuracy, macro-F1, confusion matrix, token efficiency.

Binary datasets (gold labels a strict subset of the model's labels, e.g. no `neutral`) are
scored by dropping the logits of the absent labels before the argmax, as the KDA paper does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training.data import Table, read_table
from training.evaluate.metrics import scores
from training.evaluate.predictors import Predictor


def truncate(ids: list[int], max_length: int) -> list[int]:
    """Cut token ids that already carry their special tokens as the service's tokenizer does:
    the final special token (`</s>`, `[SEP]`) stays, the text before it is shortened."""
    if len(ids) <= max_length:
        return ids
    return ids[: max_length - 1] + ids[-1:]


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
    logits, lengths = predict_logits(predictor, table.texts, batch_size, path.name)
    return score_logits(table, predictor.labels, logits, lengths, predictor.max_length, binary)


def predict_logits(
    predictor: Predictor, texts: list[str], batch_size: int = 64, desc: str = "predict"
) -> tuple[np.ndarray, list[int]]:
    """Logits for `texts` (truncated as served, length-sorted batches) and each text's length
    in tokens before truncation."""
    ids = predictor.token_ids(texts)
    cut = [truncate(x, predictor.max_length) for x in ids]
    order = np.argsort([len(x) for x in cut], kind="stable")
    logits = np.zeros((len(cut), len(predictor.labels)), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
        rows = order[start : start + batch_size]
        logits[rows] = predictor.logits([cut[i] for i in rows])
    return logits, [len(x) for x in ids]


def score_logits(
    table: Table,
    labels: list[str],
    logits: np.ndarray,
    lengths: list[int],
    max_length: int,
    binary: str = "auto",
) -> dict[str, Any]:
    """Scores of one labelled table from a model's logits on its texts (and their lengths in
    tokens before truncation)."""
    path = table.path
    unknown = sorted(set(table.labels) - set(labels))
    if unknown:
        raise ValueError(
            f"{path.name} has labels {unknown} the model does not know "
            f"({labels}); map them with --label-map"
        )
    present = sorted({labels.index(g) for g in table.labels})
    restrict = binary == "drop-absent" or (binary == "auto" and len(present) < len(labels))
    if restrict:
        masked = np.full_like(logits, -np.inf)
        masked[:, present] = logits[:, present]
        logits = masked
    gold = np.array([labels.index(g) for g in table.labels])
    result = scores(gold, logits.argmax(1), labels)
    counts = np.array(lengths)
    result.update(
        {
            "dataset": path.stem,
            "file": str(path),
            "scored_labels": [labels[i] for i in present] if restrict else labels,
            "tokens_per_text": {
                "mean": round(float(counts.mean()), 2),
                "p95": float(np.percentile(counts, 95)),
            },
            "truncated_share": round(float((counts > max_length).mean()), 4),
            "max_length": max_length,
        }
    )
    return result
