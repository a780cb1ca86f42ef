"""Distillation: cross-entropy between the teacher's distribution on the source sentence and
the student's on the target sentence (paper eq. 1). Only the adapter trains. An epoch ends
with the held-out loss and student-teacher agreement; the best adapter is kept, training stops
after `patience` epochs without improvement, and a checkpoint after every epoch lets an
interrupted run resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from training.finetune.trainer import length_grouped_batches
from training.kda.student import KDAStudent, pad_rows

CHECKPOINT = "kda-checkpoint.pt"


@dataclass
class FitSettings:
    learning_rate: float = 1e-4
    batch_size: int = 128
    epochs: int = 20
    patience: int = 3
    seed: int = 13
    clip: float = 1.0


def _without_out(fingerprint: Any) -> Any:
    """Checkpoints written before the run directory left the fingerprint still name it."""
    if isinstance(fingerprint, dict) and isinstance(fingerprint.get("config"), dict):
        config = {k: v for k, v in fingerprint["config"].items() if k != "out"}
        return fingerprint | {"config": config}
    return fingerprint


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    return -(teacher_probs * torch.log_softmax(student_logits, dim=-1)).sum(-1).mean()


@torch.no_grad()
def evaluate(
    student: KDAStudent, ids: list[list[int]], probs: np.ndarray, pad_id: int, batch_size: int = 256
) -> dict[str, float]:
    student.eval()
    device = next(student.adapter.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    loss_sum, agree = 0.0, 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, mask = pad_rows(ids, rows, pad_id, device)
        logits = student(x, mask).logits.float()
        target = torch.from_numpy(probs[rows]).to(device)
        loss_sum += float(kd_loss(logits, target)) * len(rows)
        agree += int((logits.argmax(-1) == target.argmax(-1)).sum())
    student.train()
    return {"loss": loss_sum / len(ids), "agreement": agree / len(ids)}


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
) -> dict[str, Any]:
    """Train (or, with `train=False`, only reload the best adapter of the checkpoint, e.g. to
    export an interrupted run) and report."""
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
    initial = evaluate(student, held_ids, held_probs, pad_id) if not state["history"] else None
    started = time.perf_counter() - state["seconds"]
    lengths = [len(x) for x in train_ids]
    while train and state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch = state["epoch"]
        torch.manual_seed(settings.seed + epoch)
        batches = length_grouped_batches(lengths, settings.batch_size, settings.seed + epoch)
        losses = []
        for rows in tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False):
            x, mask = pad_rows(train_ids, rows, pad_id, device)
            target = torch.from_numpy(train_probs[rows]).to(device)
            loss = kd_loss(student(x, mask).logits.float(), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        held = evaluate(student, held_ids, held_probs, pad_id)
        state["epoch"] = epoch + 1
        entry = {
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(losses)), 5),
            "heldout_loss": round(held["loss"], 5),
            "heldout_agreement": round(held["agreement"], 4),
        }
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
