"""Logits from a Hugging Face model directory (PyTorch) or from a bundle (onnxruntime), behind
one interface, so a bundle is scored exactly as the service will run it."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Protocol

import numpy as np


class Predictor(Protocol):
    labels: list[str]
    max_length: int

    def token_ids(self, texts: list[str]) -> list[list[int]]: ...

    def logits(self, ids: list[list[int]]) -> np.ndarray: ...


def _pad(ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(x) for x in ids)
    arr = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        arr[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return arr, mask


class TorchPredictor:
    def __init__(self, model_dir: Path, max_length: int, prefix: str = "") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), dtype=torch.float32
        )
        self.model = self.model.eval().to(self.device)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.max_length = max_length
        self.prefix = prefix

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        encoded = self.tokenizer([self.prefix + t for t in texts])
        return [list(x) for x in encoded["input_ids"]]

    def logits(self, ids: list[list[int]]) -> np.ndarray:
        arr, mask = _pad(ids, self.tokenizer.pad_token_id or 0)
        with self._torch.no_grad():
            out = self.model(
                input_ids=self._torch.from_numpy(arr).to(self.device),
                attention_mask=self._torch.from_numpy(mask).to(self.device),
            )
        return out.logits.float().cpu().numpy()


class BundlePredictor:
    """A served bundle: its manifest's labels and max_length, its fp32 graph (or `variant`)."""

    def __init__(self, bundle: Path, variant: str = "fp32") -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        manifest = json.loads((bundle / "manifest.json").read_text())
        if variant not in manifest["variants"]:
            raise ValueError(
                f"bundle {bundle} has no {variant} variant (has {sorted(manifest['variants'])})"
            )
        self.labels = list(manifest["labels"])
        self.max_length = int(manifest["max_length"])
        self.inputs = list(manifest["inputs"])
        self.output = manifest["output"]
        self.tokenizer = Tokenizer.from_file(str(bundle / manifest["tokenizer"] / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        preprocessing = manifest.get("preprocessing", {})
        self.lowercase = bool(preprocessing.get("lowercase", False))
        form = preprocessing.get("unicode_normalization", "none")
        self.normal_form = None if form == "none" else form
        self.pad_id = (
            self.tokenizer.token_to_id("[PAD]") or self.tokenizer.token_to_id("<pad>") or 0
        )
        self.session = ort.InferenceSession(
            str(bundle / manifest["variants"][variant]), providers=["CPUExecutionProvider"]
        )

    def prepare(self, text: str) -> str:
        """The manifest's preprocessing, exactly as the service applies it."""
        if self.normal_form:
            text = unicodedata.normalize(self.normal_form, text)
        return text.lower() if self.lowercase else text

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tokenizer.encode_batch([self.prepare(t) for t in texts])]

    def logits(self, ids: list[list[int]]) -> np.ndarray:
        arr, mask = _pad(ids, self.pad_id)
        feeds = {"input_ids": arr, "attention_mask": mask, "token_type_ids": np.zeros_like(arr)}
        out = self.session.run([self.output], {k: feeds[k] for k in self.inputs})[0]
        return np.asarray(out, dtype=np.float32)


def load_predictor(
    path: Path, max_length: int, prefix: str = "", variant: str = "fp32"
) -> Predictor:
    if (path / "manifest.json").is_file():
        return BundlePredictor(path, variant)
    if (path / "config.json").is_file():
        return TorchPredictor(path, max_length, prefix)
    raise FileNotFoundError(
        f"{path} is neither a bundle (manifest.json) nor a model directory (config.json)"
    )
