"""In-domain adaptation of a trained KDA student (beyond the paper).

The paper's student only ever sees translated news and talks; the texts it is asked about are
feedback, reviews and social posts. Here the student keeps learning on unlabeled text of those
domains, from soft labels an ensemble of zero-shot models gave it (`python -m training
ensemble label`: each member prior-corrected by EM, then averaged; no label of any evaluation
set is read). Only the adapter trains, as in KDA itself; the teacher stays frozen.

Three further label-free changes ride along, each a setting:
- the Vietnamese side gets the teacher's own normalisation (NFC, lowercase: the English teacher
  is uncased), recorded with the sources so the tokenizer, the evaluator and the service apply
  it too;
- the vocabulary also keeps every piece the unlabeled training slice uses (informal spellings,
  emoji), with `<unk>` share and tokens per text reported on the held-out slice;
- the exported logits are shifted from the prior of the labels the student learnt to equal
  classes (the paper's balanced set-up), or to the prior EM estimates on the unlabeled text
  (Saerens et al., 2002).

It trains exactly like the KDA distillation (training/kda/train.py on the shared loop), on
the ensemble's soft labels instead of the teacher's: the held-out slice is checked, the best
adapter kept and the whole state checkpointed every `eval_every` steps; a stopped run resumes
exactly, and more epochs or patience continue a finished one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from tokenizers import Tokenizer, normalizers

from training.batches import length_sorted_batches, pad_rows
from training.data import normalise
from training.kda.reports import ADAPT_REPORT, AdaptReport, PriorShift, VocabularyChange
from training.kda.student import KDAStudent
from training.kda.train import FitSettings, fit
from training.settings_files import Settings
from training.soft_labels import SoftLabels


class AdaptConfig(Settings):
    sources: Path  # committed sources of a KDA student (models/sources/<name>)
    labels: Path  # an `ensemble label` directory
    out: Path
    # a finished `kda run` directory: its training pairs (target side, the teacher's soft
    # labels) are mixed into the unlabeled texts, so the adapter keeps the teacher's transfer
    # while it learns the domain; the held-out check stays on the unlabeled slice alone
    pairs: Path | None = None
    lowercase: bool = True
    extend_vocabulary: bool = True
    # shift the exported logits from the prior the labels had to: equal classes (`uniform`),
    # EM's estimate on the unlabeled text (`em`), or leave them (`none`)
    prior_correction: Literal["uniform", "em", "none"] = "uniform"
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    batch_size: int = Field(default=32, ge=1)
    epochs: int = Field(default=2, ge=1)
    eval_every: int = Field(default=400, ge=1)
    patience: int = Field(default=4, ge=1)  # evaluations without a better held-out loss
    max_length: int = Field(default=100, ge=4)
    clip: float = Field(default=1.0, gt=0)
    seed: int = 13
    threads: int = Field(default=0, ge=0)


def with_preprocessing(tokenizer: Any, preprocessing: dict[str, Any]) -> Any:
    """Put the recorded preprocessing in front of the fast tokenizer's own normaliser, so every
    consumer of `tokenizer.json` (training, parity, the evaluator, the service) applies it."""
    steps: list[Any] = []
    if preprocessing.get("unicode_normalization", "none") == "NFC":
        steps.append(normalizers.NFC())
    if preprocessing.get("lowercase"):
        steps.append(normalizers.Lowercase())
    if steps:
        backend = tokenizer.backend_tokenizer
        if backend.normalizer is not None:
            steps.append(backend.normalizer)
        backend.normalizer = normalizers.Sequence(steps)
    return tokenizer


def unk_share(tokenizer: Tokenizer, texts: list[str]) -> dict[str, float]:
    from training.vocab.trim import unk_share as shares

    unknown, tokens = shares(tokenizer, texts)
    return {"unk_share": round(unknown, 6), "tokens_per_text": round(tokens, 2)}


def extended_pieces(
    base_dir: Path, kept: list[int], texts: list[str], lowercase: bool
) -> list[int]:
    """`kept` plus every base piece `texts` use, in base-id order (the trim's convention).
    Lowercased input can never produce a piece with a capital letter: those are dropped (on
    e5-small's Vietnamese trim, 10.5k of 23.6k pieces), special tokens kept."""
    from training.vocab.trim import count_pieces

    data = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if lowercase:
        pieces = data["model"]["vocab"]
        special = {t["id"] for t in data.get("added_tokens", [])} | {data["model"]["unk_id"]}
        kept = [i for i in kept if i in special or pieces[i][0] == pieces[i][0].lower()]
    base = Tokenizer.from_str(json.dumps(data))
    return sorted(set(kept) | set(count_pieces(base, texts)))


def _fingerprint(config: AdaptConfig) -> dict[str, Any]:
    """What a checkpoint depends on: not where it lives, nor the thread count, nor when the run
    stops (more epochs or patience continue the same trajectory)."""
    skip = {"out", "threads", "epochs", "patience"}
    if config.pairs is None:  # runs made before pairs could be mixed in resume as they were
        skip.add("pairs")
    return {k: v for k, v in json.loads(config.model_dump_json()).items() if k not in skip}


@torch.no_grad()
def probabilities(
    student: KDAStudent, ids: list[list[int]], pad: int, progress: bool = True
) -> np.ndarray:
    student.eval()
    out = np.zeros((len(ids), student.config.num_labels), dtype=np.float32)
    for rows in length_sorted_batches(ids, 256, "student probabilities" if progress else None):
        x, mask = pad_rows(ids, rows, pad, torch.device("cpu"))
        out[rows] = torch.softmax(student(x, mask).logits.float(), -1).numpy()
    return out


def run(config: AdaptConfig) -> AdaptReport:
    from training.kda.package import KEPT, rebuild_student, student_with_pieces
    from training.kda.pipeline import training_pairs
    from training.prior import em_prior, logit_shift, smoothed
    from training.weights.resolve import resolve_model

    if config.threads:
        torch.set_num_threads(config.threads)
    # the pairs are read first: a wrong directory is named before minutes of work
    mixed = training_pairs(config.pairs) if config.pairs is not None else None
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "adapt-config.json").write_text(config.model_dump_json(indent=2))
    soft = SoftLabels.read(config.labels)
    student, tokenizer, source = rebuild_student(config.sources)
    texts, probs, held = soft.texts, soft.probs, soft.heldout
    labels = [student.config.id2label[i] for i in range(student.config.num_labels)]
    if soft.labels != labels:
        raise ValueError(f"{config.labels} labels {soft.labels}, the student {labels}")
    prepared = [normalise(t, config.lowercase) for t in texts]
    train_rows, held_rows = np.flatnonzero(~held), np.flatnonzero(held)

    base_dir = Path(resolve_model(source.base))
    kept = json.loads((config.sources / KEPT).read_text())
    pieces_before = len(kept)
    before = unk_share(tokenizer.backend_tokenizer, [prepared[i] for i in held_rows])
    if config.extend_vocabulary:
        kept = extended_pieces(base_dir, kept, [prepared[i] for i in train_rows], config.lowercase)
        student, tokenizer = student_with_pieces(student, base_dir, kept)
    after = unk_share(tokenizer.backend_tokenizer, [prepared[i] for i in held_rows])
    vocabulary = VocabularyChange(
        pieces_before=pieces_before, pieces=len(kept), heldout_before=before, heldout_after=after
    )
    (config.out / KEPT).write_text(json.dumps(kept))
    print(f"{len(texts)} texts, {len(held_rows)} held out; {vocabulary}", flush=True)

    ids = [
        list(x)
        for x in tokenizer(prepared, truncation=True, max_length=config.max_length)["input_ids"]
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_ids, held_ids = [ids[i] for i in train_rows], [ids[i] for i in held_rows]
    train_probs, held_probs = probs[train_rows], probs[held_rows]
    pairs = 0
    if mixed is not None:
        pair_texts, pair_probs, pair_labels = mixed
        if pair_labels != labels:
            raise ValueError(f"{config.pairs}: teacher labels {pair_labels}, the student {labels}")
        pair_ids = tokenizer(
            [normalise(t, config.lowercase) for t in pair_texts],
            truncation=True,
            max_length=config.max_length,
        )["input_ids"]
        train_ids += [list(x) for x in pair_ids]
        train_probs = np.concatenate([train_probs, pair_probs.astype(train_probs.dtype)])
        pairs = len(pair_texts)
        print(f"{pairs} training pairs of {config.pairs} mixed in", flush=True)

    settings = FitSettings(
        learning_rate=config.learning_rate, batch_size=config.batch_size, epochs=config.epochs,
        patience=config.patience, seed=config.seed, clip=config.clip,
        eval_every=config.eval_every,
    )  # fmt: skip
    fitted = fit(
        student, train_ids, train_probs, held_ids, held_probs, settings, config.out, pad,
        _fingerprint(config),
    )  # fmt: skip
    student.cpu()
    initial = fitted.initial_heldout
    assert initial is not None  # a run that trained measured its start
    start = {"step": 0, "heldout_loss": round(initial["loss"], 5)}
    start["heldout_agreement"] = round(initial["agreement"], 4)
    trained_under = smoothed(train_probs.mean(0))
    shift = None
    if config.prior_correction != "none":
        estimate, steps = em_prior(probabilities(student, ids, pad), trained_under)
        uniform = np.full(len(trained_under), 1 / len(trained_under))
        prior = estimate if config.prior_correction == "em" else uniform
        shift = PriorShift(
            trained_under=trained_under.round(4).tolist(),
            em_estimate=estimate.round(4).tolist(),
            em_iterations=steps,
            target=prior.round(4).tolist(),
            logit_shift=logit_shift(trained_under, prior).round(4).tolist(),
        )
    report = AdaptReport(
        texts=len(texts),
        train=len(train_rows),
        pairs=pairs,
        heldout=len(held_rows),
        vocabulary=vocabulary,
        history=[start, *fitted.history],
        best_heldout_loss=fitted.best_heldout_loss,
        steps=fitted.steps,
        seconds=fitted.seconds,
        prior_trained_under=trained_under.round(4).tolist(),
        prior=shift,
    )
    torch.save(
        {k: v.contiguous() for k, v in student.adapter.state_dict().items()},
        config.out / "adapter.pt",
    )
    report.write(config.out / ADAPT_REPORT)
    return report
