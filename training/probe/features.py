"""Sentence features of a frozen encoder: the mean of the last layer over real tokens,
L2-normalised (e5's own pooling). Texts are normalised the way the model will see them at
inference, encoded in length-sorted batches, and cached on disk by content, so the probe's
selection and every prediction reuse one pass over the encoder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from training.batches import pad_rows


class Encoder:
    def __init__(self, model_dir: str, prefix: str = "", max_length: int = 128) -> None:
        self.model_dir = model_dir
        self.prefix = prefix
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()

    def _key(self, texts: list[str]) -> str:
        digest = hashlib.sha256(f"{self.model_dir}|{self.prefix}|{self.max_length}".encode())
        for text in texts:
            digest.update(text.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:20]

    @torch.no_grad()
    def encode(
        self, texts: list[str], cache: Path | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """(n, width) float32 features; with `cache` (a directory), read or written there."""
        path = cache / f"{self._key(texts)}.npy" if cache is not None else None
        if path is not None and path.is_file():
            return np.load(path).astype(np.float32)
        ids = self.tokenizer(
            [self.prefix + t for t in texts], truncation=True, max_length=self.max_length
        )["input_ids"]
        pad = self.tokenizer.pad_token_id or 0
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in tqdm(range(0, len(order), batch_size), desc="encode", unit="batch"):
            rows = order[start : start + batch_size]
            x, mask = pad_rows(ids, rows, pad, torch.device("cpu"))
            hidden = self.model(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            pooled = (hidden * m).sum(1) / m.sum(1)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out.astype(np.float16))
        return out
