"""Token-classification heads on a student (POS tags, IOB2 named entities): the same task
adapter as the topic heads (a bottleneck in every layer, encoder frozen) plus a linear layer
on every token, trained like them (AdamW, the epoch with the best dev score kept).

Words come pre-split (UD / CoNLL files: `word<TAB>tag`, a blank line between sentences); a
word's label sits on its first sub-word token, the others are ignored by the loss and by
prediction (the usual alignment, and the one the service reads back: app/tagging.py)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BertModel
from transformers.modeling_outputs import TokenClassifierOutput

from training.batches import length_sorted_batches, pad_rows
from training.compress.distill import prediction_loss
from training.compress.head import (
    AdaptedHead,
    BodyRun,
    HeadMethod,
    HeadSettings,
    fit_body,
    fit_head,
)

IGNORE = -100  # the loss skips every sub-word but a word's first


@dataclass
class Sentences:
    words: list[list[str]]
    tags: list[list[str]]


def read_conll(path: Path) -> Sentences:
    """`word<TAB>tag` lines, a blank line after each sentence."""
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    words: list[list[str]] = []
    tags: list[list[str]] = []
    current: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            if current:
                words.append([w for w, _ in current])
                tags.append([t for _, t in current])
                current = []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"{path}:{number}: expected `word<TAB>tag`, got {line!r}")
        current.append((parts[0], parts[1]))
    if current:
        words.append([w for w, _ in current])
        tags.append([t for _, t in current])
    return Sentences(words, tags)


@dataclass
class Encoded:
    ids: list[list[int]]
    targets: list[list[int]]  # per token: the word's label on its first sub-word, else IGNORE
    firsts: list[list[int | None]]  # per word: its first token, None when truncation cut it


def words_of(text: str) -> list[str]:
    """Unlabeled text as the tagging sets split it: runs of word characters, and every
    other non-space character on its own (UD and CoNLL files keep punctuation apart)."""
    return re.findall(r"\w+|[^\w\s]", text)


def encode_words(tokenizer: Any, words: list[list[str]], max_length: int) -> Encoded:
    """Token ids and each word's first token, with the tokenizer's own word alignment;
    no targets (every token IGNORE)."""
    out = Encoded([], [], [])
    for sentence in words:
        enc = tokenizer(sentence, is_split_into_words=True, truncation=True, max_length=max_length)
        firsts: list[int | None] = [None] * len(sentence)
        for position, word in enumerate(enc.word_ids()):
            if word is not None and firsts[word] is None:
                firsts[word] = position
        out.ids.append(list(enc["input_ids"]))
        out.targets.append([IGNORE] * len(enc["input_ids"]))
        out.firsts.append(firsts)
    return out


def encode(tokenizer: Any, data: Sentences, labels: list[str], max_length: int) -> Encoded:
    """Token ids and first-sub-word targets, with the tokenizer's own word alignment."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for sent in data.tags for t in sent} - set(index))
    if unknown:
        raise ValueError(f"tags {unknown} are not among the labels {labels}")
    out = encode_words(tokenizer, data.words, max_length)
    for tags, targets, firsts in zip(data.tags, out.targets, out.firsts, strict=True):
        for tag, first in zip(tags, firsts, strict=True):
            if first is not None:
                targets[first] = index[tag]
    return out


@dataclass
class SoftTags:
    """What a token head distils besides its labels: unlabeled sentences (the head's own
    encoding) and a teacher's logits on each of their words (NaN where the teacher's
    truncation cut the word), compared at a temperature."""

    data: Encoded
    logits: list[np.ndarray]  # per sentence: (words, labels)
    temperature: float


class TokenClassifier(AdaptedHead):
    """Encoder (frozen, with task adapters; or, `full`, trained whole) -> dropout -> linear
    on every token."""

    def __init__(
        self, encoder: BertModel, labels: list[str], reduction: int = 16, kind: str = "adapter"
    ) -> None:
        super().__init__(encoder, labels, kind, reduction)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> TokenClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return TokenClassifierOutput(logits=self.classifier(self.dropout(hidden.last_hidden_state)))


@torch.no_grad()
def word_logits(
    model: TokenClassifier, data: Encoded, pad_id: int, desc: str | None = None
) -> list[np.ndarray]:
    """Each sentence's logits at its words' first tokens, (words, labels); a NaN row for a
    word truncation cut off. A progress bar named `desc` where it is given."""
    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray] = [np.empty(0) for _ in data.ids]
    for rows in length_sorted_batches(data.ids, 64, desc):
        x, mask = pad_rows(data.ids, rows, pad_id, device)
        batch = model(x, mask).logits.float().cpu().numpy()
        for r, i in enumerate(rows):
            words = np.full((len(data.firsts[i]), batch.shape[-1]), np.nan, dtype=np.float32)
            kept = [(w, f) for w, f in enumerate(data.firsts[i]) if f is not None]
            if kept:
                words[[w for w, _ in kept]] = batch[r, [f for _, f in kept]]
            out[i] = words
    return out


def predict(model: TokenClassifier, data: Encoded, pad_id: int) -> list[list[int | None]]:
    """Each word's label index (None for a word truncation cut off)."""
    return [
        [None if np.isnan(row[0]) else int(row.argmax()) for row in sentence]
        for sentence in word_logits(model, data, pad_id)
    ]


Score = Callable[[list[list[int | None]]], float]  # word predictions -> the dev figure


class _TaggerMethod(HeadMethod):
    """A token head as a loop method: cross-entropy on the labelled sentences' first
    sub-words and, with `soft`, the teacher's distribution on the unlabeled sentences' words
    (T^2 * KL); each loss is a mean over its words times its sentences, so every sentence
    weighs about the same. A dev figure."""

    def __init__(
        self,
        model: TokenClassifier,
        train: Encoded,
        dev: Encoded,
        pad_id: int,
        dev_score: Score,
        soft: SoftTags | None = None,
    ) -> None:
        self.model, self.train, self.dev, self.soft = model, train, dev, soft
        self.pad_id, self.dev_score = pad_id, dev_score
        self.ids = train.ids + (soft.data.ids if soft else [])  # labelled sentences first
        self.best = {}

    def sizes(self) -> list[int]:
        return [len(x) for x in self.ids]

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        x, mask = pad_rows(self.ids, rows, self.pad_id, device)
        logits = module(x, mask).logits
        n = len(self.train.ids)
        labelled = [r for r, i in enumerate(rows) if i < n]
        target = torch.full((len(labelled), x.shape[1]), IGNORE, dtype=torch.long)
        for row, r in enumerate(labelled):
            target[row, : len(self.train.targets[rows[r]])] = torch.tensor(
                self.train.targets[rows[r]]
            )
        words = int((target != IGNORE).sum())
        total = nn.functional.cross_entropy(
            logits[labelled].reshape(-1, logits.shape[-1]),
            target.reshape(-1).to(device),
            ignore_index=IGNORE,
            reduction="sum",
        ) / max(1, words / max(1, len(labelled)))
        unlabeled = [r for r, i in enumerate(rows) if i >= n]
        if unlabeled:
            assert self.soft is not None
            at, teacher = [], []
            for r in unlabeled:
                sentence = rows[r] - n
                for word, first in enumerate(self.soft.data.firsts[sentence]):
                    row = self.soft.logits[sentence][word]
                    if first is not None and not np.isnan(row[0]):
                        at.append((r, first))
                        teacher.append(row)
            if at:
                student = logits[[r for r, _ in at], [f for _, f in at]]
                kl = prediction_loss(
                    student, torch.from_numpy(np.stack(teacher)).to(device), self.soft.temperature
                )
                total = total + kl.sum() / (len(at) / len(unlabeled))
        return total

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        return {"dev_score": self.dev_score(predict(module, self.dev, self.pad_id))}  # type: ignore[arg-type]


def train_tagger(
    encoder: BertModel,
    labels: list[str],
    train: Encoded,
    dev: Encoded,
    pad_id: int,
    settings: HeadSettings,
    dev_score: Score,
    soft: SoftTags | None = None,
    body: BodyRun | None = None,
) -> tuple[TokenClassifier, dict[str, Any]]:
    """Train one head on the shared loop (on `soft`'s teacher too, if given); the weights
    of the epoch with the best `dev_score` are returned. With `body`, a body of the task's
    own (`settings.kind` full: TinyBERT's task-aware distillation, word by word),
    checkpointed there."""
    torch.manual_seed(settings.seed)
    model = TokenClassifier(encoder, labels, settings.reduction, settings.kind)
    method = _TaggerMethod(model, train, dev, pad_id, dev_score, soft)
    if body is not None:
        return model, fit_body(method, settings, body, "dev_score")
    return model, fit_head(method, settings, f"tagger seed {settings.seed}", "dev_score")


def word_scores(
    gold: list[list[str]], predicted: list[list[int | None]], labels: list[str], scheme: str
) -> dict[str, float]:
    """POS (`tags`): seqeval F1 (the paper's POS figure: seqeval's default reading, where a
    run of equal tags is one chunk), word accuracy and macro-F1 over the tags. NER (`iob2`):
    entity-level precision, recall and F1 (seqeval, its default CoNLL reading) plus word
    accuracy. A word truncation cut off counts as wrong (`O` for NER)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    fallback = "O" if scheme == "iob2" else "_"
    tags = [[labels[p] if p is not None else fallback for p in sent] for sent in predicted]
    flat_gold = [t for sent in gold for t in sent]
    flat_pred = [t for sent in tags for t in sent]
    accuracy = float(np.mean([g == p for g, p in zip(flat_gold, flat_pred, strict=True)]))
    if scheme == "iob2":
        return {
            "f1": float(f1_score(gold, tags)),
            "precision": float(precision_score(gold, tags)),
            "recall": float(recall_score(gold, tags)),
            "word_accuracy": accuracy,
        }
    with warnings.catch_warnings():  # "NOUN seems not to be NE tag": expected for UPOS
        warnings.simplefilter("ignore", UserWarning)
        chunk_f1 = float(f1_score(gold, tags))
    present = sorted(set(flat_gold))
    f1s = []
    for tag in present:
        tp = sum(g == p == tag for g, p in zip(flat_gold, flat_pred, strict=True))
        predicted_n = sum(p == tag for p in flat_pred)
        gold_n = sum(g == tag for g in flat_gold)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / gold_n
        f1s.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    return {"f1": chunk_f1, "word_accuracy": accuracy, "macro_f1": float(np.mean(f1s))}
