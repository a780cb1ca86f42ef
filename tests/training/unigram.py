"""A tiny SentencePiece-Unigram model (an e5/XLM-R stand-in) for vocabulary and packing tests."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁",
    "▁xin",
    "▁chào",
    "▁bạn",
    "▁hello",
    "▁world",
    "x",
    "i",
    "n",
    "c",
    "h",
    "à",
    "o",
    "b",
    "ạ",
    "▁x",
    "▁c",
    "▁b",
    "<mask>",
]


def tiny_model(path: Path) -> None:
    vocab = [(p, 0.0 if i < 4 or p == "<mask>" else -float(i)) for i, p in enumerate(PIECES)]
    tok = Tokenizer(Unigram(vocab, unk_id=3))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(PIECES),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    config.pad_token_id = 1
    BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
