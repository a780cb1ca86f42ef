"""Task heads on an encoder: a sequential bottleneck adapter in every layer (Pfeiffer et al.,
2020, the paper's task adapter: after each layer's FFN, down-project by the reduction factor,
ReLU, up-project, residual) plus a classifier on the mean-pooled last hidden state; or a full
fine-tune of encoder and classifier. Written here rather than taken from the `adapters`
package, which pins an older transformers: the module is a few lines and exports to ONNX as
part of the graph.

Training follows the paper's Table 4 for topic classification (AdamW 1e-4, batch 16, 20
epochs) on the shared loop (training/loop.py): the epoch with the best dev macro-F1 is kept,
then test is scored once. A head may also learn from a teacher (`Soft`): a bigger model's
logits on unlabeled texts, which carry what a few hundred labelled rows cannot."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BertModel
from transformers.modeling_outputs import SequenceClassifierOutput

from training.batches import length_sorted_batches, pad_rows
from training.compress.distill import BEST, prediction_loss
from training.evaluate.metrics import scores
from training.loop import Loop, LoopSettings

HEAD_KINDS = ("adapter", "full")


class Bottleneck(nn.Module):
    def __init__(self, d: int, reduction: int) -> None:
        super().__init__()
        self.down = nn.Linear(d, max(1, d // reduction))
        self.up = nn.Linear(max(1, d // reduction), d)
        nn.init.zeros_(self.up.weight)  # starts as the identity: the encoder is unchanged
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


class AdaptedOutput(nn.Module):
    """BertOutput with the bottleneck between the FFN's projection and the residual norm."""

    def __init__(self, output: Any, reduction: int) -> None:
        super().__init__()
        self.dense = output.dense
        self.dropout = output.dropout
        self.LayerNorm = output.LayerNorm
        self.adapter = Bottleneck(output.dense.out_features, reduction)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden = self.adapter(self.dropout(self.dense(hidden_states)))
        return self.LayerNorm(hidden + input_tensor)


class LabelConfig:
    """What the exporter reads from a classifier's config."""

    def __init__(self, labels: list[str]) -> None:
        self.num_labels = len(labels)
        self.id2label = dict(enumerate(labels))
        self.label2id = {name: i for i, name in enumerate(labels)}


class AdaptedHead(nn.Module):
    """A copy of the encoder and a dropout + linear classifier over its hidden size; an
    `adapter` head also freezes the copy and puts a bottleneck adapter after each layer's
    output (the paper's sequential adapters), a `full` one trains it whole."""

    def __init__(
        self, encoder: BertModel, labels: list[str], kind: str = "adapter", reduction: int = 16
    ) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}; choose one of {HEAD_KINDS}")
        self.encoder = copy.deepcopy(encoder)
        self.kind = kind
        self.config = LabelConfig(labels)
        if kind == "adapter":
            for p in self.encoder.parameters():
                p.requires_grad_(False)
            layers: list[Any] = list(self.encoder.encoder.layer)
            for layer in layers:
                layer.output = AdaptedOutput(layer.output, reduction)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(encoder.config.hidden_size, len(labels))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class EncoderClassifier(AdaptedHead):
    """Encoder -> mean pooling over real tokens -> dropout -> linear: logits."""

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        m = attention_mask.unsqueeze(-1).to(hidden.last_hidden_state.dtype)
        pooled = (hidden.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


@dataclass
class HeadSettings:
    kind: str = "adapter"
    reduction: int = 16
    learning_rate: float = 1e-4
    batch_size: int = 16
    epochs: int = 20
    seed: int = 1


@dataclass
class Soft:
    """What a head distils besides its labels: unlabeled texts (the head's own token ids),
    a teacher's logits on each and the temperature they are compared at."""

    ids: list[list[int]]
    logits: np.ndarray  # (texts, labels)
    temperature: float


@torch.no_grad()
def logits(
    model: EncoderClassifier, ids: list[list[int]], pad_id: int, desc: str | None = None
) -> np.ndarray:
    """The model's logits for every text, in batches of similar length (a progress bar named
    `desc` where it is given)."""
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for rows in length_sorted_batches(ids, 64, desc):
        x, mask = pad_rows(ids, rows, pad_id, device)
        out[rows] = model(x, mask).logits.float().cpu().numpy()
    return out


class MeanLogits(nn.Module):
    """Heads of one task (of either kind, on the same tokenizer) as one model: their logits
    averaged. Seeds of a head as one teacher: an ensemble is steadier than any one of them."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.config = heads[0].config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        outputs = [head(input_ids, attention_mask) for head in self.heads]
        mean = torch.stack([o.logits for o in outputs]).mean(0)
        return type(outputs[0])(logits=mean)


def predict(model: EncoderClassifier, ids: list[list[int]], pad_id: int) -> np.ndarray:
    return logits(model, ids, pad_id).argmax(-1)


class HeadMethod(ABC):
    """What every head brings to the loop alike: its model, the best weights kept in memory,
    and the frozen encoder's training mode. Subclasses add examples, loss and evaluation."""

    model: nn.Module
    best: dict[str, torch.Tensor]

    @abstractmethod
    def sizes(self) -> list[int]: ...

    @abstractmethod
    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor: ...

    @abstractmethod
    def evaluate(self, module: nn.Module) -> dict[str, float]: ...

    def module(self) -> nn.Module:
        return self.model

    def keep(self, module: nn.Module, out: Path | None) -> None:
        """The best weights in memory and, for a run with a directory (a body's training,
        long enough to be stopped and resumed), on disk."""
        self.best = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if out is not None:
            torch.save(self.best, out / BEST)

    def train_mode(self, module: nn.Module) -> None:
        adapted_mode(module)


class _HeadMethod(HeadMethod):
    """A text head as a loop method: cross-entropy on the labelled rows and, with `soft`,
    the teacher's distribution on the unlabeled ones (T^2 * KL, per text: every example
    weighs the same); dev macro-F1."""

    def __init__(
        self,
        model: EncoderClassifier,
        train: tuple[list[list[int]], list[int]],
        dev: tuple[list[list[int]], list[int]],
        labels: list[str],
        pad_id: int,
        soft: Soft | None = None,
    ) -> None:
        self.model, self.train, self.dev, self.soft = model, train, dev, soft
        self.labels, self.pad_id = labels, pad_id
        self.ids = train[0] + (soft.ids if soft else [])  # labelled rows first
        self.best = {}

    def sizes(self) -> list[int]:
        return [len(x) for x in self.ids]

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        x, mask = pad_rows(self.ids, rows, self.pad_id, device)
        out = module(x, mask).logits
        n = len(self.train[0])
        labelled = [i for i, r in enumerate(rows) if r < n]
        gold = [self.train[1][rows[i]] for i in labelled]
        target = torch.tensor(gold, dtype=torch.long, device=device)
        total = nn.functional.cross_entropy(out[labelled], target, reduction="sum")
        unlabeled = [i for i, r in enumerate(rows) if r >= n]
        if unlabeled:
            assert self.soft is not None
            teacher = torch.from_numpy(self.soft.logits[[rows[i] - n for i in unlabeled]])
            kl = prediction_loss(out[unlabeled], teacher.to(device), self.soft.temperature)
            total = total + kl.sum()
        return total

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        predicted = predict(module, self.dev[0], self.pad_id)  # type: ignore[arg-type]
        return {"dev_macro_f1": scores(np.array(self.dev[1]), predicted, self.labels)["macro_f1"]}


def adapted_mode(module: nn.Module) -> None:
    """Training mode for a head whose encoder is frozen: the encoder's dropout stays off, its
    adapters and the classifier train."""
    module.train()
    inner: Any = getattr(module, "module", module)  # under DistributedDataParallel
    if getattr(inner, "kind", "adapter") == "adapter":
        inner.encoder.eval()
        for layer in list(inner.encoder.encoder.layer):
            layer.output.adapter.train()


def fit_head(method: HeadMethod, settings: HeadSettings, name: str, metric: str) -> dict[str, Any]:
    """Train `method`'s model on the shared loop (AdamW at a constant rate, no clipping,
    nothing written to disk), load the epoch with the best `metric` into it, and report."""
    loop_settings = LoopSettings.of(settings, clip=None, metric=metric, higher_is_better=True)
    result = Loop(loop_settings, None, name).run(method)
    method.model.load_state_dict(method.best)
    method.model.eval()
    best = max(result["history"], key=lambda h: h[metric])  # the first epoch reaching it
    return {
        "seed": settings.seed,
        "best_epoch": int(best["epoch"]),
        metric: round(float(best[metric]), 4),
        "trainable_parameters": sum(
            p.numel() for p in method.model.parameters() if p.requires_grad
        ),
        "history": [{"epoch": h["epoch"], metric: h[metric]} for h in result["history"]],
        "seconds": result["seconds"],
    }


@dataclass
class BodyRun:
    """A body's training (a task's own body, trained whole): the directory of its checkpoint
    and what identifies it (the body it started from, its settings and teacher), so that a
    checkpoint of another is refused rather than resumed."""

    out: Path
    identity: dict[str, Any]


def fit_body(
    method: HeadMethod, settings: HeadSettings, body: BodyRun, metric: str
) -> dict[str, Any]:
    """Train a method whose model is trained whole on the shared loop, gradients clipped at 1,
    checkpointed at every evaluation (a stopped run resumes); the epoch with the best
    `metric` is loaded into it, from disk if it came before a stop."""
    loop_settings = LoopSettings.of(settings, metric=metric, higher_is_better=True)
    result = Loop(loop_settings, body.out, "body").run(method, config=body.identity)
    best_weights = method.best or torch.load(body.out / BEST, map_location="cpu")
    method.model.load_state_dict(best_weights)
    method.model.eval()
    best = max(result["history"], key=lambda h: h[metric])  # the first epoch reaching it
    return {
        "best_epoch": int(best["epoch"]),
        metric: round(float(best[metric]), 4),
        "history": [{k: h[k] for k in ("epoch", "train_loss", metric)} for h in result["history"]],
        "seconds": result["seconds"],
    }


def train_head(
    encoder: BertModel,
    labels: list[str],
    train: tuple[list[list[int]], list[int]],
    dev: tuple[list[list[int]], list[int]],
    pad_id: int,
    settings: HeadSettings,
    soft: Soft | None = None,
    body: BodyRun | None = None,
) -> tuple[EncoderClassifier, dict[str, Any]]:
    """Train one head on the shared loop (on `soft`'s teacher too, if given); the weights
    of the epoch with the best dev macro-F1 are returned. With `body`, a body of the task's
    own (`settings.kind` full), checkpointed there."""
    torch.manual_seed(settings.seed)
    model = EncoderClassifier(encoder, labels, settings.kind, settings.reduction)
    method = _HeadMethod(model, train, dev, labels, pad_id, soft)
    if body is not None:
        return model, fit_body(method, settings, body, "dev_macro_f1")
    return model, fit_head(method, settings, f"head seed {settings.seed}", "dev_macro_f1")
