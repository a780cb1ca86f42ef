"""Distillation: cross-entropy between the teacher's distribution on the source sentence and
the student's on the target sentence (paper eq. 1). Only the adapter trains. An epoch ends
with the held-out loss and student-teacher agreement; the best adapter is kept, training stops
after `patience` epochs without improvement, and a checkpoint after every epoch lets an
interrupted run resume.

With `feature_weight` > 0 the student also matches the teacher's sentence features (the hidden
state its head reads and the mean over tokens, `teacher_outputs`), standardised per dimension
on the training pairs: a 3-class distribution says little per pair, and the paper's 300k pairs
are not available here. Model choice stays on the held-out distillation loss alone, so runs
with and without features are compared on the same number."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from training.batches import length_grouped_batches, pad_rows
from training.kda.student import KDAStudent

CHECKPOINT = "kda-checkpoint.pt"


@dataclass
class FitSettings:
    learning_rate: float = 1e-4
    batch_size: int = 128
    epochs: int = 20
    patience: int = 3
    seed: int = 13
    clip: float = 1.0
    feature_weight: float = 0.0


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


def _without_out(fingerprint: Any) -> Any:
    """Checkpoints written before the run directory left the fingerprint still name it."""
    if isinstance(fingerprint, dict) and isinstance(fingerprint.get("config"), dict):
        config = {k: v for k, v in fingerprint["config"].items() if k != "out"}
        return fingerprint | {"config": config}
    return fingerprint


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
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    loss_sum, agree, feature_sum = 0.0, 0, 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
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
) -> dict[str, Any]:
    """Train (or, with `train=False`, only reload the best adapter of the checkpoint, e.g. to
    export an interrupted run) and report. `features` is required when the settings weight
    the feature loss."""
    if settings.feature_weight > 0 and features is None:
        raise ValueError("feature_weight > 0 needs the teacher's features of the pairs")
    if settings.feature_weight == 0:
        features = None
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student.to(device).train()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    state: dict[str, Any] = {
        "epoch": 0,
        "best_loss": float("inf"),
        "bad_epochs": 0,
        "history": [],
        "seconds": 0.0,
        "best_adapter": None,
    }
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if _without_out(saved["fingerprint"]) != fingerprint:
            raise ValueError(f"{checkpoint} belongs to another run; remove it or change out")
        student.adapter.load_state_dict(saved["adapter"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resuming after epoch {state['epoch']}", flush=True)
    if not train and state["best_adapter"] is None:
        raise ValueError(f"no trained adapter in {checkpoint}: train first")
    initial = None
    if not state["history"]:
        initial = evaluate(student, held_ids, held_probs, pad_id, features=features)
    started = time.perf_counter() - state["seconds"]
    lengths = [len(x) for x in train_ids]
    while train and state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch = state["epoch"]
        torch.manual_seed(settings.seed + epoch)
        batches = length_grouped_batches(lengths, settings.batch_size, settings.seed + epoch)
        losses, feature_losses = [], []
        for rows in tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False):
            x, mask = pad_rows(train_ids, rows, pad_id, device)
            target = torch.from_numpy(train_probs[rows]).to(device)
            logits, predicted = student.with_features(x, mask)
            distil = kd_loss(logits.float(), target)
            loss = distil
            if features is not None:
                wanted = torch.from_numpy(features.train[rows]).to(device)
                matched = feature_loss(predicted, wanted, features)
                feature_losses.append(float(matched.detach()))
                loss = loss + settings.feature_weight * matched
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(distil.detach()))
        held = evaluate(student, held_ids, held_probs, pad_id, features=features)
        state["epoch"] = epoch + 1
        entry = {
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(losses)), 5),
            "heldout_loss": round(held["loss"], 5),
            "heldout_agreement": round(held["agreement"], 4),
        }
        if features is not None:
            entry["train_feature_loss"] = round(float(np.mean(feature_losses)), 5)
            entry["heldout_feature_loss"] = round(held["feature_loss"], 5)
        state["history"].append(entry)
        tqdm.write(json.dumps(entry))
        if held["loss"] < state["best_loss"] - 1e-6:
            state["best_loss"], state["bad_epochs"] = held["loss"], 0
            state["best_adapter"] = {
                k: v.detach().cpu().clone() for k, v in student.adapter.state_dict().items()
            }
        else:
            state["bad_epochs"] += 1
        state["seconds"] = time.perf_counter() - started
        torch.save(
            {
                "fingerprint": fingerprint,
                "adapter": student.adapter.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state": state,
            },
            checkpoint,
        )
    if state["best_adapter"] is not None:
        student.adapter.load_state_dict(state["best_adapter"])
    student.eval()
    final = evaluate(student, held_ids, held_probs, pad_id)
    return {
        "epochs": state["epoch"],
        "stopped_early": state["bad_epochs"] >= settings.patience,
        "initial_heldout": initial,
        "best_heldout_loss": round(state["best_loss"], 5),
        "heldout_agreement": round(final["agreement"], 4),
        "history": state["history"],
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "trainable_parameters": student.adapter.trainable_parameters(),
        "train_pairs": len(train_ids),
        "heldout_pairs": len(held_ids),
    }
