"""Distillation: cross-entropy between the teacher's distribution on the source sentence and
the student's on the target sentence (paper eq. 1). Only the adapter trains. An epoch ends
with the held-out loss and student-teacher agreement; the best adapter is kept, training stops
after `patience` epochs without improvement, and a checkpoint after every epoch lets an
interrupted run resume (all of it the shared loop's, training/loop.py).

With `feature_weight` > 0 the student also matches the teacher's sentence features (the hidden
state its head reads and the mean over tokens, `teacher_outputs`), standardised per dimension
on the training pairs: a 3-class distribution says little per pair, and the paper's 300k pairs
are not available here. Model choice stays on the held-out distillation loss alone, so runs
with and without features are compared on the same number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.batches import length_sorted_batches, pad_rows
from training.kda.reports import FitReport
from training.kda.student import KDAStudent
from training.loop import CHECKPOINT, Loop, LoopSettings

BEST_ADAPTER, INITIAL = "best-adapter.pt", "initial-heldout.json"


@dataclass
class FitSettings:
    learning_rate: float = 1e-4
    batch_size: int = 128
    epochs: int = 20
    patience: int = 3
    seed: int = 13
    clip: float = 1.0
    feature_weight: float = 0.0
    eval_every: int | None = None  # steps between held-out checks (None: once an epoch)


@dataclass
class FeatureTargets:
    """The teacher's sentence features for the training and held-out pairs, standardised with
    the training pairs' mean and spread."""

    train: np.ndarray
    held: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def standardise(cls, train: np.ndarray, held: np.ndarray) -> FeatureTargets:
        mean = train.astype(np.float32).mean(0)
        scale = train.astype(np.float32).std(0) + 1e-4
        return cls(
            ((train - mean) / scale).astype(np.float32),
            ((held - mean) / scale).astype(np.float32),
            mean,
            scale,
        )


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    return -(teacher_probs * torch.log_softmax(student_logits, dim=-1)).sum(-1).mean()


def feature_loss(
    student_features: torch.Tensor, target: torch.Tensor, features: FeatureTargets
) -> torch.Tensor:
    mean = torch.from_numpy(features.mean).to(student_features.device)
    scale = torch.from_numpy(features.scale).to(student_features.device)
    return torch.nn.functional.mse_loss((student_features - mean) / scale, target)


@torch.no_grad()
def evaluate(
    student: KDAStudent,
    ids: list[list[int]],
    probs: np.ndarray,
    pad_id: int,
    batch_size: int = 256,
    features: FeatureTargets | None = None,
) -> dict[str, float]:
    """Held-out distillation loss and agreement (and, given targets, the feature loss)."""
    student.eval()
    device = next(student.adapter.parameters()).device
    loss_sum, agree, feature_sum = 0.0, 0, 0.0
    for rows in length_sorted_batches(ids, batch_size):
        x, mask = pad_rows(ids, rows, pad_id, device)
        logits, predicted = student.with_features(x, mask)
        logits = logits.float()
        target = torch.from_numpy(probs[rows]).to(device)
        loss_sum += float(kd_loss(logits, target)) * len(rows)
        agree += int((logits.argmax(-1) == target.argmax(-1)).sum())
        if features is not None:
            wanted = torch.from_numpy(features.held[rows]).to(device)
            feature_sum += float(feature_loss(predicted, wanted, features)) * len(rows)
    student.train()
    result = {"loss": loss_sum / len(ids), "agreement": agree / len(ids)}
    if features is not None:
        result["feature_loss"] = feature_sum / len(ids)
    return result


class _KDAMethod:
    """The distillation as a loop method: the student's loss against the teacher's
    distribution (and features) on the training pairs, the held-out loss to choose by."""

    def __init__(
        self,
        student: KDAStudent,
        train: tuple[list[list[int]], np.ndarray],
        held: tuple[list[list[int]], np.ndarray],
        pad_id: int,
        settings: FitSettings,
        features: FeatureTargets | None,
    ) -> None:
        self.student, self.train, self.held = student, train, held
        self.pad_id, self.settings, self.features = pad_id, settings, features

    def module(self) -> nn.Module:
        return self.student

    def sizes(self) -> list[int]:
        return [len(x) for x in self.train[0]]

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        x, mask = pad_rows(self.train[0], rows, self.pad_id, device)
        target = torch.from_numpy(self.train[1][rows]).to(device)
        out = module(x, mask, features=True)
        loss = kd_loss(out.logits.float(), target)
        if self.features is not None:
            wanted = torch.from_numpy(self.features.train[rows]).to(device)
            matched = feature_loss(out.hidden_states[0], wanted, self.features)
            loss = loss + self.settings.feature_weight * matched
        return loss * len(rows)

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        held = evaluate(module, *self.held, self.pad_id, features=self.features)  # type: ignore[arg-type]
        return {f"heldout_{k}": v for k, v in held.items()}

    def keep(self, module: nn.Module, out: Path | None) -> None:
        if out is not None:  # the main process; every process reloads it after the run
            adapter = module.adapter.state_dict()  # type: ignore[union-attr]
            torch.save({k: v.detach().cpu() for k, v in adapter.items()}, out / BEST_ADAPTER)

    def train_mode(self, module: nn.Module) -> None:
        module.train()  # the student keeps its teacher in eval mode itself


def fit(
    student: KDAStudent,
    train_ids: list[list[int]],
    train_probs: np.ndarray,
    held_ids: list[list[int]],
    held_probs: np.ndarray,
    settings: FitSettings,
    out: Path,
    pad_id: int,
    fingerprint: dict[str, Any] | None = None,
    train: bool = True,
    features: FeatureTargets | None = None,
) -> FitReport:
    """Train on the shared loop (or, with `train=False`, only reload the best adapter of an
    earlier run, e.g. to export an interrupted one) and report. `features` is required when
    the settings weight the feature loss."""
    if settings.feature_weight > 0 and features is None:
        raise ValueError("feature_weight > 0 needs the teacher's features of the pairs")
    if settings.feature_weight == 0:
        features = None
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student.to(device)
    held = (held_ids, held_probs)
    fresh = not (out / CHECKPOINT).is_file()
    loop = Loop(LoopSettings.of(settings, metric="heldout_loss"), out, "kda")
    initial = None
    if (out / INITIAL).is_file() and not fresh:
        initial = json.loads((out / INITIAL).read_text())
    elif train:
        initial = evaluate(student, *held, pad_id, features=features)
        if loop.main:
            (out / INITIAL).write_text(json.dumps(initial))
    method = _KDAMethod(student, (train_ids, train_probs), held, pad_id, settings, features)
    if train:
        result = loop.run(method, fingerprint)
    elif fresh:
        raise ValueError(f"no trained adapter in {out}: train first")
    else:
        saved = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
        if saved["config"] != fingerprint:
            raise ValueError(f"{out / CHECKPOINT} belongs to another run; remove it")
        result = saved["state"] | {"steps": saved["state"]["step"]}
    student.adapter.load_state_dict(torch.load(out / BEST_ADAPTER, map_location=device))
    student.eval()
    final = evaluate(student, *held, pad_id)
    history = result["history"]
    return FitReport(
        epochs=history[-1]["epoch"] if history else 0,
        stopped_early=result["stopped_early"],
        initial_heldout=initial,
        best_heldout_loss=round(result["best"], 5),
        heldout_agreement=round(final["agreement"], 4),
        history=history,
        steps=result["steps"],
        seconds=round(result["seconds"], 1),
        device=str(device),
        trainable_parameters=student.adapter.trainable_parameters(),
        train_pairs=len(train_ids),
        heldout_pairs=len(held_ids),
    )
