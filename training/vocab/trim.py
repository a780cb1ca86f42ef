"""Trim a SentencePiece-Unigram model (XLM-R, e5) to the pieces one language uses.

Pieces are counted on the language's text; the `size` most frequent are kept, plus every
special token and the single-character pieces of every character seen (so text in the language
can always be spelled out rather than become `<unk>`). The fast tokenizer is rewritten with only
the kept pieces, ids renumbered in their original order, so it produces exactly those pieces
(a Unigram model re-segments over what it has; what cannot be spelled becomes `<unk>`). The
embedding matrix is sliced to the same rows: a text whose pieces were all kept embeds exactly
as before."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

METASPACE = "▁"


@dataclass
class TrimResult:
    kept_ids: list[int]  # old ids, in new-id order
    report: dict[str, Any]


def count_pieces(tokenizer: Tokenizer, lines: list[str], batch: int = 2000) -> Counter[int]:
    counts: Counter[int] = Counter()
    for start in tqdm(range(0, len(lines), batch), desc="count pieces", unit="batch"):
        for enc in tokenizer.encode_batch(lines[start : start + batch], add_special_tokens=False):
            counts.update(enc.ids)
    return counts


def choose_pieces(
    data: dict[str, Any], counts: Counter[int], size: int, lines: list[str]
) -> list[int]:
    vocab = data["model"]["vocab"]
    index = {piece: i for i, (piece, _) in enumerate(vocab)}
    keep = {t["id"] for t in data.get("added_tokens", [])}
    keep.add(data["model"]["unk_id"])
    keep.update(i for i, _ in counts.most_common(size))
    for char in {c for line in lines for c in line if not c.isspace()}:
        for piece in (char, METASPACE + char):
            if piece in index:
                keep.add(index[piece])
    if METASPACE in index:
        keep.add(index[METASPACE])
    return sorted(keep)


def rewrite(data: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """tokenizer.json with only `kept` pieces and every id renumbered."""
    new_id = {old: new for new, old in enumerate(kept)}
    out = json.loads(json.dumps(data))
    vocab = data["model"]["vocab"]
    out["model"]["vocab"] = [vocab[i] for i in kept]
    out["model"]["unk_id"] = new_id[data["model"]["unk_id"]]
    for token in out.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    post = out.get("post_processor") or {}
    for special in post.get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    for key in ("cls", "sep"):
        if isinstance(post.get(key), list):
            post[key][1] = new_id[post[key][1]]
    return out


def write_tokenizer(model_dir: Path, kept: list[int], out: Path) -> Any:
    """Write the tokenizer of `model_dir` cut to the `kept` pieces into `out` (which must
    exist) and return it loaded, as the trimmed model directory and rebuilt bundles use it."""
    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    (out / "tokenizer.json").write_text(json.dumps(rewrite(data, kept), ensure_ascii=False))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out / name)
    return AutoTokenizer.from_pretrained(str(out))


def unk_share(tokenizer: Tokenizer, lines: list[str]) -> tuple[float, float]:
    """(share of tokens that are <unk>, mean tokens per text) without special tokens."""
    unk = tokenizer.token_to_id("<unk>")
    total = unknown = 0
    for enc in tokenizer.encode_batch(lines, add_special_tokens=False):
        total += len(enc.ids)
        unknown += sum(1 for i in enc.ids if i == unk)
    return unknown / max(total, 1), total / max(len(lines), 1)


def _load_encoder(model_dir: Path) -> Any:
    """The encoder as saved: a BERT-like checkpoint without pooler weights (e5) loads without a
    pooler, rather than with a random one that would be saved and counted."""
    from safetensors import safe_open

    kwargs: dict[str, Any] = {}
    weights = model_dir / "model.safetensors"
    config = json.loads((model_dir / "config.json").read_text())
    if weights.is_file() and config.get("model_type") in ("bert", "xlm-roberta", "roberta"):
        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
        kwargs["add_pooling_layer"] = any(".pooler." in f".{n}" for n in names)
    return AutoModel.from_pretrained(str(model_dir), dtype=torch.float32, **kwargs)


def trim_model(
    model_dir: Path, out: Path, lines: list[str], heldout: list[str], size: int
) -> dict[str, Any]:
    """Write a trimmed copy of `model_dir` (weights + tokenizer) to `out`; return a report."""
    tok_path = model_dir / "tokenizer.json"
    if not tok_path.is_file():
        raise FileNotFoundError(f"{model_dir} has no tokenizer.json")
    data = json.loads(tok_path.read_text(encoding="utf-8"))
    if data["model"]["type"] != "Unigram":
        raise ValueError(
            f"only Unigram (SentencePiece) tokenizers can be trimmed here, "
            f"not {data['model']['type']}"
        )
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    original = Tokenizer.from_str(json.dumps(data))
    kept = choose_pieces(data, count_pieces(original, lines), size, lines)
    trimmed_data = rewrite(data, kept)
    trimmed = Tokenizer.from_str(json.dumps(trimmed_data))
    unk_before, tokens_before = unk_share(original, heldout)
    unk_after, tokens_after = unk_share(trimmed, heldout)

    model = _load_encoder(model_dir)
    table = model.get_input_embeddings().weight.detach()
    rows = torch.tensor(kept, dtype=torch.long)
    new_table = torch.nn.Embedding(len(kept), table.shape[1])
    new_table.weight.data.copy_(table[rows])
    params_before = sum(p.numel() for p in model.parameters())
    model.set_input_embeddings(new_table)
    model.config.vocab_size = len(kept)
    new_id = {old: new for new, old in enumerate(kept)}
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(model.config, attr, None)
        if value is not None:
            setattr(model.config, attr, new_id.get(value))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(str(out), safe_serialization=True)
    write_tokenizer(model_dir, kept, out)
    report = {
        "source": str(model_dir),
        "out": str(out),
        "size_requested": size,
        "pieces_before": len(data["model"]["vocab"]),
        "pieces_after": len(kept),
        "parameters_before": params_before,
        "parameters_after": sum(p.numel() for p in model.parameters()),
        "corpus_lines": len(lines),
        "heldout_lines": len(heldout),
        "heldout_unk_share_before": round(unk_before, 6),
        "heldout_unk_share_after": round(unk_after, 6),
        "heldout_tokens_per_text_before": round(tokens_before, 2),
        "heldout_tokens_per_text_after": round(tokens_after, 2),
    }
    (out / "trim-report.json").write_text(json.dumps(report, indent=2))
    return report


def split_lines(lines: list[str], heldout_fraction: float, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(lines))
    cut = max(1, round(len(lines) * heldout_fraction))
    held = set(order[:cut].tolist())
    return (
        [x for i, x in enumerate(lines) if i not in held],
        [x for i, x in enumerate(lines) if i in held],
    )
