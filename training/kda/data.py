"""Parallel data for KDA: read pairs, pseudo-label the source side with the teacher (its
probabilities are the training targets), balance the classes, hold part out."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.batches import length_sorted_batches, pad_rows
from training.data import read_table
from training.kda.config import ParallelFile
from training.kda.student import TeacherKind, teacher_outputs


@dataclass
class Pairs:
    source: list[str]
    target: list[str]


def _aligned(spec: ParallelFile) -> tuple[list[str], list[str]]:
    """Two tables of translations joined on a key column (SIB-200's `index_id`), in the
    source file's order; keys missing from the target file are skipped."""
    assert spec.target_path is not None
    source = _keyed(spec.path, spec.source_column, spec.key_column)
    target = dict(_keyed(spec.target_path, spec.target_column, spec.key_column))
    pairs = [(text, target[key]) for key, text in source if key in target]
    return [s for s, _ in pairs], [t for _, t in pairs]


def _keyed(path: Path, column: str, key: str) -> list[tuple[str, str]]:
    texts = read_table(path, column, None).texts
    keys = read_table(path, key, None).texts
    return list(zip(keys, texts, strict=True))


def read_pairs(files: list[ParallelFile], limit: int | None = None) -> Pairs:
    """TSV/CSV with a header, JSONL, or two aligned tables; empty or duplicate pairs are
    dropped."""
    source: list[str] = []
    target: list[str] = []
    seen: set[tuple[str, str]] = set()
    for spec in files:
        if spec.target_path is not None:
            src, tgt = _aligned(spec)
        elif spec.path.suffix == ".jsonl":
            rows = [
                json.loads(line)
                for line in spec.path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            src = [str(r[spec.source_column]) for r in rows]
            tgt = [str(r[spec.target_column]) for r in rows]
        else:
            table = read_table(spec.path, spec.target_column, None)
            src = read_table(spec.path, spec.source_column, None).texts
            tgt = table.texts
        count = 0
        for s, t in zip(src, tgt, strict=True):
            s, t = s.strip(), t.strip()
            if s and t and (s, t) not in seen:
                seen.add((s, t))
                source.append(s)
                target.append(t)
                count += 1
                if limit is not None and count >= limit:
                    break
    if not source:
        raise ValueError("the parallel files hold no usable pairs")
    return Pairs(source, target)


@torch.no_grad()
def pseudo_label(
    teacher: Any,
    kind: TeacherKind,
    tokenizer: Any,
    texts: list[str],
    max_length: int,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's class probabilities for each source sentence, (n, labels) float32, and
    its sentence features (`teacher_outputs`), (n, 2 x width) float16."""
    teacher.eval()
    device = next(teacher.parameters()).device
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    probs = np.zeros((len(texts), teacher.config.num_labels), dtype=np.float32)
    features: np.ndarray | None = None
    for rows in length_sorted_batches(encoded, batch_size, "pseudo-label"):
        ids, mask = pad_rows(encoded, rows, pad, device)
        logits, sentence = teacher_outputs(teacher, kind, mask, input_ids=ids)
        probs[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if features is None:
            features = np.zeros((len(texts), sentence.shape[1]), dtype=np.float16)
        features[rows] = sentence.cpu().numpy().astype(np.float16)
    assert features is not None
    return probs, features


def balance(
    labels: np.ndarray, names: list[str], mode: str | float | dict[str, int], seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices to keep, sampled per class: `smallest` (every class down to the rarest one),
    a number r (no class more than r times the rarest: keeps more of a skewed corpus while
    bounding the skew), a count per label name, or `none`. A label the teacher never predicts
    stays empty. Reports the distribution before and after."""
    rng = random.Random(seed)
    before = Counter(names[i] for i in labels)
    by_class = {name: [i for i, y in enumerate(labels) if names[y] == name] for name in names}
    if mode == "none":
        keep = list(range(len(labels)))
    else:
        smallest = min((len(v) for v in by_class.values() if v), default=0)
        if mode == "smallest":  # the rarest class the teacher predicts at all
            wanted = {name: smallest for name in names}
        elif isinstance(mode, (int, float)) and not isinstance(mode, bool) and mode >= 1:
            wanted = {name: int(smallest * mode) for name in names}
        elif isinstance(mode, dict):
            unknown = set(mode) - set(names)
            if unknown:
                raise ValueError(f"balance names labels {sorted(unknown)} not in {names}")
            wanted = {name: int(mode.get(name, len(by_class[name]))) for name in names}
        else:
            raise ValueError(f"unknown balance mode {mode!r}")
        keep = []
        for name in names:
            pool = by_class[name]
            keep += rng.sample(pool, min(wanted[name], len(pool)))
    rng.shuffle(keep)
    if len(keep) < 2:
        raise ValueError(
            f"balancing ({mode}) leaves {len(keep)} pairs of {len(labels)}: "
            f"pseudo-labels were {dict(before)}"
        )
    after = Counter(names[labels[i]] for i in keep)
    report = {
        "mode": mode,
        "before": {n: before.get(n, 0) for n in names},
        "after": {n: after.get(n, 0) for n in names},
    }
    return np.array(keep, dtype=np.int64), report


def split_heldout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, round(n * fraction))
    return np.sort(order[cut:]), np.sort(order[:cut])
