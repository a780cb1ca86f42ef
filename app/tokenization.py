"""Bundle tokenizers: batched encoding with truncation reported per text.

Texts are tokenized once, before queueing, so the batcher knows every length when it forms
batches (its token budget and its length sort both need them). `tokenizers` releases the GIL
while encoding, so running this in a worker thread keeps the event loop free.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from app.bundle import Bundle
from app.errors import BundleError, InputTooLong

# `tokenizers` parallelises encode_batch over its own thread pool. In the service every core
# is already busy running inference, and those threads then fight for them: a request's
# encoding took 150x longer under load than alone. One request's texts are few; encode them
# on the calling thread. (An explicit setting in the environment still wins.)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>", "<|endoftext|>")


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: np.ndarray  # int64, at most max_length tokens
    truncated: bool
    original_tokens: int


@dataclass(frozen=True, slots=True)
class EncodedWords(Encoded):
    # per word: the index of its first sub-word token, None when truncation cut it off
    first_tokens: tuple[int | None, ...]


class TextEncoder:
    def __init__(
        self, bundle_name: str, path: Path, max_length: int, preprocessing: dict[str, Any]
    ):
        if preprocessing.get("word_segmentation"):
            raise BundleError(bundle_name, "word segmentation is required but not supported here")
        try:
            self._full = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise BundleError(
                bundle_name, f"tokenizer {path.name} cannot be loaded: {exc}"
            ) from exc
        self._full.no_padding()
        self._full.no_truncation()
        self._cut = Tokenizer.from_str(self._full.to_str())
        self._cut.enable_truncation(max_length)
        self.max_length = max_length
        self._lowercase = bool(preprocessing.get("lowercase", False))
        norm = preprocessing.get("unicode_normalization", "none")
        self._normal_form = None if norm == "none" else norm
        self.pad_id = self._find_pad_id()

    @classmethod
    def for_bundle(cls, bundle: Bundle) -> TextEncoder:
        """The encoder a bundle's manifest describes: its tokenizer, length and preprocessing."""
        manifest = bundle.manifest
        return cls(
            manifest.name,
            bundle.tokenizer_file,
            manifest.max_length,
            manifest.raw.get("preprocessing", {}),
        )

    def _find_pad_id(self) -> int:
        padding = self._full.padding
        if padding:
            return int(padding["pad_id"])
        for token in _PAD_CANDIDATES:
            found = self._full.token_to_id(token)
            if found is not None:
                return int(found)
        return 0

    def _prepare(self, text: str) -> str:
        if self._normal_form:
            text = unicodedata.normalize(self._normal_form, text)
        return text.lower() if self._lowercase else text

    def encode(self, texts: list[str], truncate: bool) -> list[Encoded]:
        """Encode a request's texts; with `truncate=False` an over-long text is an error."""
        prepared = [self._prepare(t) for t in texts]
        encodings = self._cut.encode_batch(prepared)
        out: list[Encoded] = []
        for index, (text, enc) in enumerate(zip(prepared, encodings, strict=True)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            if not enc.overflowing:
                out.append(Encoded(ids, False, len(ids)))
                continue
            full = len(self._full.encode(text).ids)
            if not truncate:
                raise InputTooLong(
                    f"texts[{index}] has {full} tokens; this model takes at most "
                    f"{self.max_length} (send truncate=true to cut it)",
                    details={"index": index, "tokens": full, "max_tokens": self.max_length},
                )
            out.append(Encoded(ids, True, full))
        return out

    def encode_words(self, texts: list[list[str]], truncate: bool) -> list[EncodedWords]:
        """Encode pre-split words (each word's pieces know their word), for token
        classification; with `truncate=False` an over-long text is an error."""
        prepared = [[self._prepare(w) for w in words] for words in texts]
        encodings = self._cut.encode_batch(prepared, is_pretokenized=True)
        out: list[EncodedWords] = []
        for index, (words, enc) in enumerate(zip(prepared, encodings, strict=True)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            first: list[int | None] = [None] * len(words)
            for position, word in enumerate(enc.word_ids):
                if word is not None and first[word] is None:
                    first[word] = position
            full = len(ids)
            if enc.overflowing:
                full = len(self._full.encode(words, is_pretokenized=True).ids)
                if not truncate:
                    raise InputTooLong(
                        f"texts[{index}] has {full} tokens; this model takes at most "
                        f"{self.max_length} (send truncate=true to tag the words that fit)",
                        details={"index": index, "tokens": full, "max_tokens": self.max_length},
                    )
            out.append(EncodedWords(ids, bool(enc.overflowing), full, tuple(first)))
        return out

    def dummy(self, length: int) -> np.ndarray:
        """Token ids for a warm-up batch: real text would need a vocabulary we cannot assume."""
        return np.full(length, self.pad_id, dtype=np.int64)
