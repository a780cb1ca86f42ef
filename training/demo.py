"""A tiny untrained bundle, so the service starts on a fresh clone before any real model is
trained. Everything is built locally and deterministically: a character-level WordPiece
tokenizer (no vocabulary download) and a small random BERT classifier. Its predictions are
noise, and its manifest says so (`demo: true`)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from training.export import BundleSpec, ExportSpec, write_bundle

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_VIETNAMESE = "àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ"
_WORDS = [
    "không",
    "rất",
    "tốt",
    "quá",
    "là",
    "có",
    "và",
    "của",
    "được",
    "cho",
    "người",
    "một",
    "những",
    "này",
    "với",
    "sản",
    "phẩm",
    "hàng",
    "giao",
    "nhanh",
    "chậm",
    "đẹp",
    "xấu",
    "ngon",
    "tệ",
    "hài",
    "lòng",
    "thất",
    "vọng",
    "the",
    "a",
    "is",
    "not",
    "very",
    "good",
    "bad",
    "great",
]
SAMPLE_TEXTS = [
    "Sản phẩm rất tốt, giao hàng nhanh.",
    "Phục vụ quá chậm, tôi sẽ không quay lại.",
    "Món ăn bình thường.",
    "Tuyệt vời! Tôi rất hài lòng với chất lượng.",
    "Hàng giao sai màu, thất vọng.",
    "The battery life is great but the screen is dim.",
    "Giá cả hợp lý, nhân viên thân thiện và nhiệt tình, sẽ giới thiệu cho bạn bè.",
    "Không có gì đặc biệt.",
]


def char_vocabulary(words: list[str] | None = None) -> dict[str, int]:
    """Special tokens, every character a Latin or Vietnamese text needs (word-initial and
    `##`-continuation), and optional whole words: no Latin-script text maps to [UNK]."""
    latin = "".join(chr(c) for c in range(0xDF, 0x250) if chr(c).islower())
    chars = sorted(
        set(string.ascii_lowercase + string.digits + string.punctuation + latin + _VIETNAMESE)
    )
    tokens = SPECIAL + chars + [f"##{c}" for c in chars] + sorted(set(words or []))
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


def build_char_tokenizer(
    words: list[str] | None = None, max_length: int = 128
) -> PreTrainedTokenizerFast:
    vocab = char_vocabulary(words)
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
            ),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def tiny_classifier(
    vocab_size: int,
    num_labels: int,
    max_length: int,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_length,
    )
    config.num_labels = num_labels
    return BertForSequenceClassification(config).eval()


def build_demo_bundle(
    out_dir: Path,
    name: str = "vi-sentiment-demo",
    task: str = "sentiment",
    language: str = "vi",
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    max_length: int = 128,
    seed: int = 0,
    variants: tuple[str, ...] = ("fp32", "fp16", "int8"),
) -> dict[str, Any]:
    tokenizer = build_char_tokenizer(_WORDS, max_length)
    model = tiny_classifier(len(tokenizer), len(labels), max_length, seed)
    spec = BundleSpec(
        name=name,
        version=f"0.0.0-demo.{seed}",
        task=task,
        language=language,
        labels=list(labels),
        max_length=max_length,
        variants=variants,
        demo=True,
        description="UNTRAINED DEMO: random weights, predictions are noise. It exists so the "
        "service starts before a trained bundle is built.",
        provenance={"method": "random initialisation (demo)", "seed": seed},
    )
    # Random logits sit close together, so reduced-precision variants may flip labels:
    # agreement is recorded, not enforced, for a demo.
    export = ExportSpec(min_variant_agreement=0.0)
    return write_bundle(model, tokenizer, spec, out_dir, SAMPLE_TEXTS, export)
