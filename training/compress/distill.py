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

Each distillation runs on the shared loop (training/loop.py): validated, kept if best and
checkpointed every `checkpoint_every` steps and at the end of every epoch; an interrupted run
resumes from the last checkpoint, on any number of processes. The loss is per text (each
text's token-averaged errors), so a batch split between processes sums to the same total."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from transformers import BertModel

from training.batches import length_sorted_batches, pad_rows
from training.loop import Loop, LoopSettings
from training.settings_files import Count, LearningRate, Settings

BEST, INITIAL = "distill-best.pt", "distill-initial.json"
NARROW = ("project", "first-k")  # how a narrower student is compared (see above)


class DistillSettings(Settings):
    epochs: Count = 3
    learning_rate: LearningRate = 1e-4
    batch_size: Count = 32
    weight_last: float = Field(default=1.0, ge=0)
    weight_layers: float = Field(default=1.0, ge=0)
    weight_cosine: float = Field(default=1.0, ge=0)
    clip: float = Field(default=1.0, gt=0)
    seed: int = 13
    checkpoint_every: Count = 500
    narrow: Literal["project", "first-k"] = "project"
    weight_prediction: float = Field(default=0.0, ge=0)  # task-aware distillation only
    temperature: float = Field(default=1.0, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # the loop's (GPU)


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
    """T^2 * KL(teacher || student) of the logits' softmax at temperature T, per text."""
    log_s = torch.log_softmax(student / temperature, dim=-1)
    log_t = torch.log_softmax(teacher / temperature, dim=-1)
    kl = torch.nn.functional.kl_div(log_s, log_t, log_target=True, reduction="none").sum(-1)
    return kl * temperature**2


def distill_loss(
    student_states: tuple[torch.Tensor, ...],
    teacher_states: tuple[torch.Tensor, ...],
    mask: torch.Tensor,
    layer_map: list[int],
    settings: DistillSettings,
    projection: torch.nn.Module | None = None,
    student_logits: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each text's loss (a vector: the loop sums them, so a batch split between processes
    adds up to the same total) and its parts per text. `*_states` are hidden_states tuples
    (embeddings first); layer_map[i] is the teacher layer (0-based) behind student layer i. A
    narrower student is compared through `projection` when given, else with the teacher's
    first k dimensions. With the two classifiers' logits, the prediction term and whether the
    student's top class is the teacher's are added."""
    k = student_states[-1].shape[-1]
    m = mask.to(student_states[-1].dtype)

    def widen(s: torch.Tensor) -> torch.Tensor:
        return s if projection is None else projection(s)

    def narrow(t: torch.Tensor) -> torch.Tensor:
        return t if projection is not None else t[..., :k]

    def mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        per_token = ((widen(s) - narrow(t)) ** 2).mean(-1)
        return (per_token * m).sum(1) / m.sum(1).clamp(min=1)

    last = mse(student_states[-1], teacher_states[-1])
    layers = torch.stack(
        [mse(student_states[i + 1], teacher_states[j + 1]) for i, j in enumerate(layer_map)]
    ).mean(0)
    pooled_s = widen(_mean_pool(student_states[-1], mask))
    pooled_t = _mean_pool(narrow(teacher_states[-1]), mask)
    cosine = 1 - torch.nn.functional.cosine_similarity(pooled_s, pooled_t, dim=-1)
    total = settings.weight_last * last + settings.weight_layers * layers
    total = total + settings.weight_cosine * cosine
    parts = {"last": last, "layers": layers, "cosine": cosine}
    if student_logits is not None and teacher_logits is not None:
        prediction = prediction_loss(student_logits, teacher_logits, settings.temperature)
        total = total + settings.weight_prediction * prediction
        agreement = (student_logits.argmax(-1) == teacher_logits.argmax(-1)).float()
        parts |= {"prediction": prediction, "agreement": agreement}
    return total, {name: v.detach() for name, v in parts.items()}


class Distilled(torch.nn.Module):
    """What a distillation trains: the student, the learned map of a narrower one, and (task-
    aware) the student's classifier; its forward is the per-text loss against the teacher's
    states, so a distributed wrapper sees every trained part used."""

    def __init__(
        self,
        student: BertModel,
        projection: torch.nn.Module | None,
        head: torch.nn.Module | None,
        layer_map: list[int],
        settings: DistillSettings,
    ) -> None:
        super().__init__()
        self.student, self.projection, self.head = student, projection, head
        self.layer_map, self.settings = layer_map, settings

    def forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        teacher_states: tuple[torch.Tensor, ...],
        teacher_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        states = self.student(
            input_ids=input_ids, attention_mask=mask, output_hidden_states=True
        ).hidden_states
        logits = None if self.head is None else self.head(_mean_pool(states[-1], mask))
        return distill_loss(
            states, teacher_states, mask, self.layer_map, self.settings, self.projection,
            logits, teacher_logits,
        )  # fmt: skip


def _teacher(
    teacher: BertModel, head: torch.nn.Module | None, x: torch.Tensor, mask: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    with torch.no_grad():
        states = teacher(input_ids=x, attention_mask=mask, output_hidden_states=True)
        states = states.hidden_states
        logits = None if head is None else head(_mean_pool(states[-1], mask))
    return states, logits


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
    """The mean per-text loss and parts over `ids` (no dropout)."""
    net = Distilled(student, projection, None if heads is None else heads[0], layer_map, settings)
    net.eval()
    device = next(student.parameters()).device
    totals: dict[str, float] = {"loss": 0.0}
    for rows in length_sorted_batches(ids, batch_size):
        x, mask = pad_rows(ids, rows, pad_id, device)
        states, logits = _teacher(teacher, None if heads is None else heads[1], x, mask)
        loss, parts = net(x, mask, states, logits)
        totals["loss"] += float(loss.sum())
        for name, value in parts.items():
            totals[name] = totals.get(name, 0.0) + float(value.sum())
    return {name: round(value / len(ids), 6) for name, value in totals.items()}


class Distillation:
    """The distillation as a method of the shared loop (training/loop.py)."""

    def __init__(
        self,
        net: Distilled,
        teacher: BertModel,
        teacher_head: torch.nn.Module | None,
        data: tuple[list[list[int]], list[list[int]]],
        pad_id: int,
    ) -> None:
        self.net, self.teacher, self.teacher_head = net, teacher.eval(), teacher_head
        self.train_ids, self.val_ids = data
        self.pad_id = pad_id
        self.best: dict[str, torch.Tensor] | None = None

    def module(self) -> torch.nn.Module:
        return self.net

    def sizes(self) -> list[int]:
        return [len(x) for x in self.train_ids]

    def _on(self, device: torch.device) -> None:
        self.teacher.to(device)
        if self.teacher_head is not None:
            self.teacher_head.to(device).eval()

    def loss(self, module: torch.nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        self._on(device)
        x, mask = pad_rows(self.train_ids, rows, self.pad_id, device)
        states, logits = _teacher(self.teacher, self.teacher_head, x, mask)
        per_text, _ = module(x, mask, states, logits)
        return per_text.sum()

    def evaluate(self, module: torch.nn.Module) -> dict[str, float]:
        net: Distilled = module  # type: ignore[assignment]
        self._on(next(net.parameters()).device)
        heads = None if net.head is None else (net.head, self.teacher_head)
        figures = validate(
            net.student, self.teacher, self.val_ids, self.pad_id, net.layer_map, net.settings,
            64, net.projection, heads,  # type: ignore[arg-type]
        )  # fmt: skip
        return {f"val_{k}": v for k, v in figures.items()}

    def keep(self, module: torch.nn.Module, out: Path | None) -> None:
        self.best = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if out is not None:
            torch.save(self.best, out / BEST)

    def train_mode(self, module: torch.nn.Module) -> None:
        module.train()


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
    start_map: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Train `student` in place (and with `heads`, the student's classifier: task-aware
    distillation) on the shared loop, ending with the weights of its best validation loss
    (checked every `checkpoint_every` steps and at each epoch's end, where the loop also
    checkpoints); returns the report (validation figures before and at the best). A narrower
    student's learned map starts at `start_map` (teacher width × student width) when given,
    e.g. the one an earlier distillation of the same student learned, else at first-k."""
    out.mkdir(parents=True, exist_ok=True)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student.get_input_embeddings().weight.requires_grad_(False)
    projection = projection_for(student, teacher, settings)
    if start_map is not None:
        if projection is None:
            raise ValueError(
                "start_map is for a narrower student compared through a learned map "
                f"(narrow: project); this one is {student.config.hidden_size} wide, "
                f"narrow: {settings.narrow}"
            )
        with torch.no_grad():
            projection.map.weight.copy_(start_map)
    narrower = student.config.hidden_size < teacher.config.hidden_size
    head, teacher_head = (None, None) if heads is None else heads
    if teacher_head is not None:
        for p in teacher_head.parameters():
            p.requires_grad_(False)
    net = Distilled(student, projection, head, layer_map, settings)
    loop = Loop(
        LoopSettings.of(
            settings, weight_decay=0.01, eval_every=settings.checkpoint_every, metric="val_loss"
        ),
        out,
        "distil",
    )
    first = out / INITIAL
    if first.is_file():
        initial = json.loads(first.read_text())
    else:
        initial = validate(
            student, teacher, val_ids, pad_id, layer_map, settings, 64, projection, heads
        )
        if loop.main:
            first.write_text(json.dumps(initial))
    method = Distillation(net, teacher, teacher_head, (train_ids, val_ids), pad_id)
    # the checkpoint's identity leaves the epochs out: a finished distillation can be extended
    identity = settings.to_json() | {"layer_map": layer_map, "train": len(train_ids)}
    identity.pop("epochs")
    result = loop.run(method, identity)
    best = method.best
    if best is None and (out / BEST).is_file():  # kept before a resume
        best = torch.load(out / BEST, map_location="cpu")
    if best is not None:
        net.load_state_dict(best)
    net.eval()
    history = result["history"]
    kept = min(history, key=lambda h: h["val_loss"]) if history else None
    return {
        "initial_val": initial,
        "final_val": kept or {f"val_{k}": v for k, v in initial.items()},
        "history": history,
        "train_texts": len(train_ids),
        "val_texts": len(val_ids),
        "steps": result["steps"],
        "processes": result["processes"],
        "seconds": result["seconds"],
        "device": result["device"],
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
    for rows in length_sorted_batches(ids, batch_size, "FFN importance"):
        x, mask = pad_rows(ids, rows, pad_id, device)
        with torch.no_grad():
            t = teacher(input_ids=x, attention_mask=mask, output_hidden_states=True)
        s = model(input_ids=x, attention_mask=mask, output_hidden_states=True)
        loss, _ = distill_loss(s.hidden_states, t.hidden_states, mask, layer_map, settings)
        model.zero_grad(set_to_none=True)
        loss.mean().backward()
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
