"""What every peer serves: the bundle's tokenizer and onnxruntime session built exactly as this
service builds them (`TextEncoder`, `OrtModel` with the default settings on the CPU), so the
peers differ only in how requests reach the model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.batching import pad  # noqa: E402
from app.bundle import load_bundle  # noqa: E402
from app.runtime import OrtModel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tokenization import TextEncoder  # noqa: E402


class Classifier:
    def __init__(self, bundle_dir: Path, providers: str = "cpu") -> None:
        bundle = load_bundle(bundle_dir)
        manifest = bundle.manifest
        self.encoder = TextEncoder.for_bundle(bundle)
        self.model = OrtModel(bundle, Settings(providers=providers.split(",")))
        self.labels = list(manifest.labels)

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        """One onnxruntime call for `texts`, padded to the longest."""
        encoded = self.encoder.encode(texts, truncate=True)
        ids, mask = pad([e.ids for e in encoded], self.encoder.pad_id)
        logits = self.model.infer(ids, mask)
        exp = np.exp(logits - logits.max(1, keepdims=True))
        probs = exp / exp.sum(1, keepdims=True)
        return [
            {"label": self.labels[int(row.argmax())], "score": float(row.max())} for row in probs
        ]


def texts_of(body: dict[str, Any]) -> list[str]:
    return list(body["texts"]) if "texts" in body else [str(body["text"])]


def classify_requests(
    classifier: Classifier, requests: list[list[str]]
) -> list[list[dict[str, Any]]]:
    """One onnxruntime call for a batch of requests, the results split back per request."""
    flat = classifier([t for texts in requests for t in texts])
    out, start = [], 0
    for texts in requests:
        out.append(flat[start : start + len(texts)])
        start += len(texts)
    return out
