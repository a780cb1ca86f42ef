"""Hidden-state distillation of a smaller encoder from a bigger one, on plain target-language
text, and the first-order FFN neuron importance the pruning stage ranks by.

e5-small ships without its MLM head, so the paper's 0.5 MLM + 0.5 MSE becomes: MSE between
the student's last hidden states and the teacher's (the paper found MSE better than KL),
plus MSE between mapped intermediate layers (student layer i against the teacher layer it was
initialised from), plus 1 - cosine between the mean-pooled sentence embeddings, which is what
e5 users consume. Over real tokens only.

When the student is narrower (hidden-size truncation), `narrow` says how it is compared:
`first-k` against the teacher's first k dimensions (the ones it kept), or `project` (the
default) through a learned linear map from its k dimensions to the teacher's full width,
shared by all layers and dropped afterwards (TinyBERT's W_h), which starts by placing the
student's k dimensions in the teacher's first k. First-k asks the student to reproduce only
the teacher's first k coordinates and throw the rest away; the map lets it keep whatever of
the full representation fits in k dimensions. The README's compression section has the
measured difference.

The student's token embeddings stay frozen: with e5's 250k-piece table they hold 80% of the
parameters, their dense gradient and optimiser state would dominate every step, and stage 4
cuts the table to the language's pieces anyway.

Task-aware distillation (TinyBERT's second phase) adds a prediction term: given the teacher's
fine-tuned classifier and a classifier on the student, T^2 * KL(teacher || student) of their
topic distributions at temperature T over the mean-pooled last hidden states, weighted by
`weight_prediction`; the student's classifier trains with it.

Each distillation checkpoints every `checkpoint_every` steps and at the end of every epoch;
an interrupted run resumes from the last checkpoint."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import BertModel

from training.batches import length_grouped_batches, pad_rows

CHECKPOINT = "distill-checkpoint.pt"
NARROW = ("project", "first-k")


@dataclass
class DistillSettings:
    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_last: float = 1.0
    weight_layers: float = 1.0
    weight_cosine: float = 1.0
    clip: float = 1.0
    seed: int = 13
    checkpoint_every: int = 500
    narrow: str = "project"
    weight_prediction: float = 0.0  # task-aware distillation only (needs classifiers)
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.narrow not in NARROW:
            raise ValueError(f"narrow must be one of {NARROW}, not {self.narrow!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")


Heads = tuple[torch.nn.Module, torch.nn.Module]  # (student classifier, teacher classifier)


class Projection(torch.nn.Module):
    """Student width -> teacher width, initialised to put the student's k dimensions in the
    teacher's first k (so training starts from the first-k comparison)."""

    def __init__(self, student: int, teacher: int) -> None:
        super().__init__()
        self.map = torch.nn.Linear(student, teacher, bias=False)
        with torch.no_grad():
            self.map.weight.zero_()
            self.map.weight[:student].copy_(torch.eye(student))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map(x)


def projection_for(
    student: BertModel, teacher: BertModel, settings: DistillSettings
) -> Projection | None:
    """The learned map when the student is narrower and `narrow` is `project`, else None."""
    k, width = student.config.hidden_size, teacher.config.hidden_size
    if k == width or settings.narrow == "first-k":
        return None
    return Projection(k, width)


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def prediction_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(teacher || student) of the logits' softmax at temperature T, batch mean."""
    log_s = torch.log_softmax(student / temperature, dim=-1)
    log_t = torch.log_softmax(teacher / temperature, dim=-1)
    kl = torch.nn.functional.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    return kl * temperature**2


def distill_loss(
    student_states: tuple[torch.Tensor, ...],
    teacher_states: tuple[torch.Tensor, ...],
    mask: torch.Tensor,
    layer_map: list[int],
    settings: DistillSettings,
    projection: torch.nn.Module | None = None,
    heads: Heads | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """`*_states` are hidden_states tuples (embeddings first); layer_map[i] is the teacher
    layer (0-based) behind student layer i. A narrower student is compared through
    `projection` when given, else with the teacher's first k dimensions. With `heads`, the
    prediction term and the share of texts whose top class the student shares are added."""
    k = student_states[-1].shape[-1]
    real = mask.bool()

    def widen(s: torch.Tensor) -> torch.Tensor:
        return s if projection is None else projection(s)

    def narrow(t: torch.Tensor) -> torch.Tensor:
        return t if projection is not None else t[..., :k]

    def mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ((widen(s) - narrow(t)) ** 2)[real].mean()

    last = mse(student_states[-1], teacher_states[-1])
    layers = torch.stack(
        [mse(student_states[i + 1], teacher_states[j + 1]) for i, j in enumerate(layer_map)]
    ).mean()
    pooled_s = widen(_mean_pool(student_states[-1], mask))
    pooled_t = _mean_pool(narrow(teacher_states[-1]), mask)
    cosine = (1 - torch.nn.functional.cosine_similarity(pooled_s, pooled_t, dim=-1)).mean()
    total = settings.weight_last * last + settings.weight_layers * layers
    total = total + settings.weight_cosine * cosine
    named = [("last", last), ("layers", layers), ("cosine", cosine)]
    if heads is not None:
        s_logits = heads[0](_mean_pool(student_states[-1], mask))
        t_logits = heads[1](_mean_pool(teacher_states[-1], mask))
        prediction = prediction_loss(s_logits, t_logits, settings.temperature)
        total = total + settings.weight_prediction * prediction
        agreement = (s_logits.argmax(-1) == t_logits.argmax(-1)).float().mean()
        named += [("prediction", prediction), ("agreement", agreement)]
    parts = {name: float(v.detach()) for name, v in named}
    return total, parts


@torch.no_grad()
def validate(
    student: BertModel,
    teacher: BertModel,
    ids: list[list[int]],
    pad_id: int,
    layer_map: list[int],
    settings: DistillSettings,
    batch_size: int = 64,
    projection: torch.nn.Module | None = None,
    heads: Heads | None = None,
) -> dict[str, float]:
    student.eval()
    if heads is not None:
        heads[0].eval()
    device = next(student.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    totals: dict[str, float] = {"loss": 0.0}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, mask = pad_rows(ids, rows, pad_id, device)
        s = student(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states
        t = teacher(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states
        loss, parts = distill_loss(s, t, mask, layer_map, settings, projection, heads)
        totals["loss"] += float(loss) * len(rows)
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + value * len(rows)
    student.train()
    if heads is not None:
        heads[0].train()
    return {name: round(value / len(ids), 6) for name, value in totals.items()}


def distill(
    student: BertModel,
    teacher: BertModel,
    train_ids: list[list[int]],
    val_ids: list[list[int]],
    pad_id: int,
    layer_map: list[int],
    settings: DistillSettings,
    out: Path,
    heads: Heads | None = None,
) -> dict[str, Any]:
    """Train `student` in place (and with `heads`, the student's classifier: task-aware
    distillation); returns the report (validation loss before and after)."""
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    student.to(device).train()  # type: ignore[arg-type]
    teacher.to(device).eval()  # type: ignore[arg-type]
    for p in teacher.parameters():
        p.requires_grad_(False)
    student.get_input_embeddings().weight.requires_grad_(False)
    projection = projection_for(student, teacher, settings)
    narrower = student.config.hidden_size < teacher.config.hidden_size
    trainable = [p for p in student.parameters() if p.requires_grad]
    if projection is not None:
        projection.to(device)
        trainable += list(projection.parameters())
    if heads is not None:
        heads[0].to(device).train()
        heads[1].to(device).eval()
        for p in heads[1].parameters():
            p.requires_grad_(False)
        trainable += list(heads[0].parameters())
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "history": [], "seconds": 0.0}
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        student.load_state_dict(saved["student"])
        if projection is not None:
            projection.load_state_dict(saved["projection"])
        if heads is not None:
            heads[0].load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resuming at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}", flush=True)

    def check() -> dict[str, float]:
        return validate(
            student, teacher, val_ids, pad_id, layer_map, settings, 64, projection, heads
        )

    initial = state.get("initial") or check()
    state["initial"] = initial
    started = time.perf_counter() - state["seconds"]
    lengths = [len(x) for x in train_ids]

    def save() -> None:
        state["seconds"] = time.perf_counter() - started
        saved = {"student": student.state_dict(), "optimizer": optimizer.state_dict()}
        if projection is not None:
            saved["projection"] = projection.state_dict()
        if heads is not None:
            saved["head"] = heads[0].state_dict()
        torch.save(saved | {"state": state}, checkpoint)

    while state["epoch"] < settings.epochs:
        epoch = state["epoch"]
        torch.manual_seed(settings.seed + epoch)
        batches = length_grouped_batches(lengths, settings.batch_size, settings.seed + epoch)
        losses = []
        progress = tqdm(
            batches[state["step_in_epoch"] :],
            desc=f"distil epoch {epoch + 1}/{settings.epochs}",
            unit="batch",
            leave=False,
        )
        for rows in progress:
            x, mask = pad_rows(train_ids, rows, pad_id, device)
            with torch.no_grad():
                t = teacher(input_ids=x, attention_mask=mask, output_hidden_states=True)
            s = student(input_ids=x, attention_mask=mask, output_hidden_states=True)
            loss, _ = distill_loss(
                s.hidden_states, t.hidden_states, mask, layer_map, settings, projection, heads
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, settings.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            state["step_in_epoch"] += 1
            if state["step_in_epoch"] % settings.checkpoint_every == 0:
                save()
        val = check()
        entry = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses or [0.0])), 6)}
        entry |= {f"val_{k}": v for k, v in val.items()}
        state["history"].append(entry)
        state["epoch"], state["step_in_epoch"] = epoch + 1, 0
        tqdm.write(json.dumps(entry))
        save()
    student.eval()
    if heads is not None:
        heads[0].eval()
    return {
        "initial_val": initial,
        "final_val": state["history"][-1] if state["history"] else initial,
        "history": state["history"],
        "train_texts": len(train_ids),
        "val_texts": len(val_ids),
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "narrow": settings.narrow if narrower else None,
    }


def ffn_importance(
    model: BertModel,
    teacher: BertModel,
    ids: list[list[int]],
    pad_id: int,
    layer_map: list[int],
    settings: DistillSettings,
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """Per layer, per FFN neuron: |sum over batches of gradient x weight| of the distillation
    loss, over the neuron's input row, bias and output column (first-order Taylor estimate of
    the loss change when the neuron is removed)."""
    device = next(model.parameters()).device
    teacher.to(device).eval()  # type: ignore[arg-type]
    model.eval()  # no dropout: the estimate should not be noisy
    layers: list[Any] = list(model.encoder.layer)
    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in tqdm(range(0, len(order), batch_size), desc="FFN importance", unit="batch"):
        rows = order[start : start + batch_size]
        x, mask = pad_rows(ids, rows, pad_id, device)
        with torch.no_grad():
            t = teacher(input_ids=x, attention_mask=mask, output_hidden_states=True)
        s = model(input_ids=x, attention_mask=mask, output_hidden_states=True)
        loss, _ = distill_loss(s.hidden_states, t.hidden_states, mask, layer_map, settings)
        model.zero_grad(set_to_none=True)
        loss.backward()
        for i, layer in enumerate(layers):
            up, down = layer.intermediate.dense, layer.output.dense
            contribution = (up.weight.grad * up.weight).sum(1) + up.bias.grad * up.bias
            contribution = contribution + (down.weight.grad * down.weight).sum(0)
            sums[i] += contribution.detach().cpu()
    model.zero_grad(set_to_none=True)
    return [s.abs() for s in sums]


def most_important(importance: list[torch.Tensor], keep: int) -> list[torch.Tensor]:
    """The `keep` highest-importance neurons of each layer (indices, ascending)."""
    return [torch.sort(torch.topk(s, keep).indices).values for s in importance]
