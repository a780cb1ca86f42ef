"""Token classification around the model: splitting text into words with their character
spans, reading each word's tag off its first sub-word token, and merging IOB2 tags into
entities.

A bundle's tags were trained on words, and a word's label sits on its first sub-word token
(the usual alignment for POS and NER). Text is split into words (runs of letters and digits,
joined by inner hyphens or apostrophes, and each other non-space character on its own, as
Universal Dependencies and CoNLL tokenise); callers who tokenise differently send the words.
A letter's combining marks stay in its word (Vietnamese typed decomposed, NFD, splits like
NFC), and an emoji keeps its modifiers and joined parts (👍🏽, 👨‍👩‍👧, ❤️, a flag 🇻🇳): one word.
Spans count Unicode code points of the text as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MARK = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining
LETTERS = rf"(?:\w|[{MARK}])+"
EMOJI_TAIL = "\ufe0f\U0001f3fb-\U0001f3ff"  # variation selector 16, skin tones
WORD = re.compile(
    r"[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    rf"|{LETTERS}(?:['’-]{LETTERS})*"
    rf"|[^\w\s](?:\u200d[^\w\s]|[{EMOJI_TAIL}])*"  # a symbol, or an emoji sequence
)


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: int | None  # character span in the text; None for pre-split input
    end: int | None
    tag: str | None  # None when truncation cut the word off
    score: float | None


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    text: str
    start: int | None
    end: int | None
    first_word: int
    last_word: int
    score: float  # the mean of its words' scores


@dataclass(frozen=True, slots=True)
class Tagged:
    words: list[Word]
    entities: list[Entity] | None  # iob2 bundles only
    truncated: bool
    tokens: int


@dataclass(frozen=True, slots=True)
class WordInput:
    """One text to tag: its words and, when it came as text, the text and their spans."""

    words: list[str]
    text: str | None = None
    spans: list[tuple[int, int]] | None = None

    @classmethod
    def from_text(cls, text: str) -> WordInput:
        found = list(WORD.finditer(text))
        return cls([m.group() for m in found], text, [m.span() for m in found])


def tag_words(
    item: WordInput, logits: np.ndarray, first_tokens: tuple[int | None, ...], labels: list[str]
) -> list[Word]:
    """Each word's tag and probability, from the logits of its first sub-word token."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    out = []
    for index, word in enumerate(item.words):
        start, end = item.spans[index] if item.spans else (None, None)
        position = first_tokens[index]
        if position is None:
            out.append(Word(word, start, end, None, None))
            continue
        best = int(probs[position].argmax())
        out.append(Word(word, start, end, labels[best], float(probs[position, best])))
    return out


def entities(item: WordInput, words: list[Word]) -> list[Entity]:
    """IOB2 words merged into entities: B-X starts one, I-X continues an X (an I-X after
    anything else starts one too, as seqeval's default reading does); O and untagged words
    end it."""
    found: list[Entity] = []
    run: list[int] = []
    kind = ""

    def close() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        text = (
            item.text[words[first].start : words[last].end]
            if item.text is not None
            else " ".join(item.words[first : last + 1])
        )
        score = float(np.mean([words[i].score or 0.0 for i in run]))
        found.append(Entity(kind, text, words[first].start, words[last].end, first, last, score))
        run.clear()

    for index, word in enumerate(words):
        prefix, _, this = (word.tag or "O").partition("-")
        if prefix not in ("B", "I") or not this:
            close()
            continue
        if prefix == "B" or this != kind or not run:
            close()
            kind = this
        run.append(index)
    close()
    return found
