from __future__ import annotations

from pathlib import Path

import pytest

from app.bundle import load_bundle
from app.errors import BundleError, InputTooLong
from app.tokenization import TextEncoder


def encoder(built: dict[str, Path], **preprocessing: object) -> TextEncoder:
    bundle = load_bundle(built["vi-sentiment"])
    return TextEncoder("vi-sentiment", bundle.tokenizer_file, 32, dict(preprocessing))


def test_encode_reports_truncation_and_full_length(built: dict[str, Path]) -> None:
    enc = encoder(built)
    short, long = enc.encode(["tốt", "tốt " * 50], truncate=True)
    assert not short.truncated
    assert short.original_tokens == len(short.ids) == 3  # [CLS] tốt [SEP]
    assert long.truncated
    assert len(long.ids) == 32
    assert long.original_tokens == 52
    assert enc.pad_id == 0


def test_truncate_false_names_index_and_count(built: dict[str, Path]) -> None:
    with pytest.raises(InputTooLong) as info:
        encoder(built).encode(["a", "b", "tốt " * 40], truncate=False)
    assert info.value.details == {"index": 2, "tokens": 42, "max_tokens": 32}


def test_unicode_normalization_makes_decomposed_text_equal(built: dict[str, Path]) -> None:
    import unicodedata

    enc = encoder(built, unicode_normalization="NFC")
    composed, decomposed = enc.encode(["tốt", unicodedata.normalize("NFD", "tốt")], True)
    assert composed.ids.tolist() == decomposed.ids.tolist()


def test_word_segmentation_is_refused(built: dict[str, Path]) -> None:
    with pytest.raises(BundleError, match="word segmentation"):
        encoder(built, word_segmentation=True)
