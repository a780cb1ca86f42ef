"""Task heads on an encoder: a sequential bottleneck adapter in every layer (Pfeiffer et al.,
2020, the paper's task adapter: after each layer's FFN, down-project by the reduction factor,
ReLU, up-project, residual) plus a classifier on the mean-pooled last hidden state; or a full
fine-tune of encoder and classifier. Written here rather than taken from the `adapters`
package, which pins an older transformers: the module is a few lines and exports to ONNX as
part of the graph.

Training follows the paper's Table 4 for topic classification (AdamW 1e-4, batch 16, 20
epochs): the epoch with the best dev macro-F1 is kept, then test is scored once."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import BertModel
from transformers.modeling_outputs import SequenceClassifierOutput

from training.batches import length_grouped_batches, pad_rows
from training.evaluate.metrics import scores

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


class EncoderClassifier(nn.Module):
    """Encoder -> mean pooling over real tokens -> dropout -> linear: logits."""

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

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        m = attention_mask.unsqueeze(-1).to(hidden.last_hidden_state.dtype)
        pooled = (hidden.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@dataclass
class HeadSettings:
    kind: str = "adapter"
    reduction: int = 16
    learning_rate: float = 1e-4
    batch_size: int = 16
    epochs: int = 20
    seed: int = 1


@torch.no_grad()
def predict(model: EncoderClassifier, ids: list[list[int]], pad_id: int) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros(len(ids), dtype=np.int64)
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        x, mask = pad_rows(ids, rows, pad_id, device)
        out[rows] = model(x, mask).logits.argmax(-1).cpu().numpy()
    return out


def train_head(
    encoder: BertModel,
    labels: list[str],
    train: tuple[list[list[int]], list[int]],
    dev: tuple[list[list[int]], list[int]],
    pad_id: int,
    settings: HeadSettings,
) -> tuple[EncoderClassifier, dict[str, Any]]:
    """Train one head; the weights of the epoch with the best dev macro-F1 are returned."""
    torch.manual_seed(settings.seed)
    model = EncoderClassifier(encoder, labels, settings.kind, settings.reduction)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    train_ids, train_y = train
    target = torch.tensor(train_y)
    lengths = [len(x) for x in train_ids]
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    started = time.perf_counter()
    for epoch in tqdm(range(settings.epochs), desc=f"head seed {settings.seed}", leave=False):
        model.train()
        if settings.kind == "adapter":
            model.encoder.eval()  # frozen encoder: its dropout stays off
            adapted: list[Any] = list(model.encoder.encoder.layer)
            for layer in adapted:
                layer.output.adapter.train()
        for rows in length_grouped_batches(lengths, settings.batch_size, settings.seed + epoch):
            x, mask = pad_rows(train_ids, rows, pad_id, device)
            loss = nn.functional.cross_entropy(model(x, mask).logits, target[rows].to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        dev_scores = scores(np.array(dev[1]), predict(model, dev[0], pad_id), labels)
        history.append({"epoch": epoch + 1, "dev_macro_f1": round(dev_scores["macro_f1"], 4)})
        if dev_scores["macro_f1"] > best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (dev_scores["macro_f1"], epoch + 1, state)
    model.load_state_dict(best[2])
    model.eval()
    return model, {
        "seed": settings.seed,
        "best_epoch": best[1],
        "dev_macro_f1": round(best[0], 4),
        "trainable_parameters": model.trainable_parameters(),
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
    }
