"""A tiny untrained bundle, so the service starts on a fresh clone before any real model is
trained. Everything is built locally and deterministically: a character-level WordPiece
tokenizer (no vocabulary download) and a small random BERT classifier. Its predictions are
noise, and its manifest says so (`demo: true`)."""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    PreTrainedTokenizerFast,
)

from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec

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


def _alphabet() -> list[str]:
    latin = "".join(chr(c) for c in range(0xDF, 0x250) if chr(c).islower())
    return sorted(
        set(string.ascii_lowercase + string.digits + string.punctuation + latin + _VIETNAMESE)
    )


def char_vocabulary(words: list[str] | None = None) -> dict[str, int]:
    """Special tokens, every character a Latin or Vietnamese text needs (word-initial and
    `##`-continuation), and optional whole words: no Latin-script text maps to [UNK]."""
    chars = _alphabet()
    tokens = SPECIAL + chars + [f"##{c}" for c in chars] + sorted(set(words or []))
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


def _skeleton(vocab: dict[str, int]) -> Tokenizer:
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
    tok.decoder = decoders.WordPiece()
    return tok


def _wrap(tok: Tokenizer, max_length: int) -> PreTrainedTokenizerFast:
    vocab = tok.get_vocab()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def build_char_tokenizer(
    words: list[str] | None = None, max_length: int = 128
) -> PreTrainedTokenizerFast:
    return _wrap(_skeleton(char_vocabulary(words)), max_length)


def train_tokenizer(
    lines: Iterable[str], vocab_size: int, max_length: int = 128
) -> PreTrainedTokenizerFast:
    """A subword WordPiece vocabulary learnt from `lines` (realistic token counts), over the
    same full alphabet, so unseen characters still never become [UNK]."""
    tok = _skeleton(char_vocabulary())
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=_alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return _wrap(tok, max_length)


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    intermediate: int


# `minilm` has the shape of all-MiniLM-L6-v2, for benchmarks that should cost what a real
# model costs.
PRESETS = {
    "tiny": Shape(hidden=64, layers=2, heads=4, intermediate=128),
    "minilm": Shape(hidden=384, layers=6, heads=12, intermediate=1536),
}


def tiny_classifier(
    vocab_size: int,
    num_labels: int,
    max_length: int,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate: int | None = None,
    token_level: bool = False,
) -> BertForSequenceClassification | BertForTokenClassification:
    """A random BERT with a text head, or (`token_level`) a head per token."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or hidden * 2,
        max_position_embeddings=max_length,
    )
    config.num_labels = num_labels
    if token_level:
        return BertForTokenClassification(config).eval()
    return BertForSequenceClassification(config).eval()


def read_corpus(path: Path, limit: int) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"corpus {path} does not exist")
    with path.open(encoding="utf-8") as handle:
        return [line.strip() for line, _ in zip(handle, range(limit), strict=False) if line.strip()]


def build_demo_bundle(
    out_dir: Path,
    name: str = "vi-sentiment-demo",
    task: str = "sentiment",
    language: str = "vi",
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    max_length: int = 128,
    seed: int = 0,
    variants: tuple[str, ...] = ("fp32", "fp16", "int8"),
    preset: str = "tiny",
    corpus: Path | None = None,
    vocab_size: int = 8000,
) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    shape = PRESETS[preset]
    if corpus is None:
        tokenizer = build_char_tokenizer(_WORDS, max_length)
        vocabulary = "characters and a few words"
    else:
        tokenizer = train_tokenizer(read_corpus(corpus, 20_000), vocab_size, max_length)
        vocabulary = f"WordPiece ({len(tokenizer)} tokens) learnt from {corpus.name}"
    model = tiny_classifier(
        len(tokenizer),
        len(labels),
        max_length,
        seed,
        shape.hidden,
        shape.layers,
        shape.heads,
        shape.intermediate,
    )
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
        provenance={
            "method": "random initialisation (demo)",
            "seed": seed,
            "shape": preset,
            "vocabulary": vocabulary,
        },
    )
    # Random logits sit close together, so reduced-precision variants may flip labels:
    # agreement is recorded, not enforced, for a demo.
    export = ExportSpec(min_variant_agreement=0.0)
    return write_bundle(model, tokenizer, spec, out_dir, SAMPLE_TEXTS, export)
