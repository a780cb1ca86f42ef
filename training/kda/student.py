"""The KDA student: frozen target embeddings -> trained adapter -> the frozen teacher from its
embedding output onward (its own position embeddings and normalisation) -> its frozen head.

Two kinds of teacher. Encoders (BERT/RoBERTa-like, a `classifier` head) take the adapter's
output as `inputs_embeds`. Decoders (GPT-2-like, a `score` head) pool at the last real token:
the student does that pooling itself from the attention mask, so batches may be padded on
the right whatever the teacher's tokenizer prefers, as the service pads them."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from training.kda.adapter import KDAAdapter, svd_basis

TeacherKind = Literal["encoder", "decoder"]


def teacher_kind(teacher: Any) -> TeacherKind:
    if hasattr(teacher, "score") and not hasattr(teacher, "classifier"):
        return "decoder"
    if hasattr(teacher, "classifier"):
        return "encoder"
    raise ValueError(
        f"{type(teacher).__name__} has neither a `classifier` (encoder) nor a "
        "`score` (decoder) head"
    )


def teacher_logits(
    teacher: Any,
    kind: TeacherKind,
    attention_mask: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The teacher's logits from token ids or from embeddings, right-padded batches."""
    if kind == "encoder":
        out = teacher(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )
        logits: torch.Tensor = out.logits
        return logits
    body = teacher.base_model
    hidden = body(
        input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask
    ).last_hidden_state
    last = attention_mask.long().sum(dim=1) - 1
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    scored: torch.Tensor = teacher.score(pooled)
    return scored


class KDAStudent(nn.Module):
    def __init__(
        self,
        teacher: Any,
        target_embeddings: torch.Tensor,
        variant: str = "full",
        svd_rank: int | None = None,
        heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.kind = teacher_kind(teacher)
        self.teacher = teacher
        self.config = teacher.config
        teacher_table = teacher.get_input_embeddings().weight.detach()
        d_teacher = teacher_table.shape[1]
        basis = None
        if variant in ("linear+cross", "full"):
            basis = svd_basis(teacher_table, svd_rank or d_teacher)
        self.embeddings = nn.Embedding.from_pretrained(target_embeddings.float(), freeze=True)
        self.adapter = KDAAdapter(
            target_embeddings.shape[1], d_teacher, basis, variant, heads, dropout=dropout
        )
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> KDAStudent:
        """Only the adapter ever trains: the teacher keeps its dropout off."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> SequenceClassifierOutput:
        adapted = self.adapter(self.embeddings(input_ids), attention_mask)
        return SequenceClassifierOutput(
            logits=teacher_logits(self.teacher, self.kind, attention_mask, inputs_embeds=adapted)
        )


def pad_rows(
    ids: list[list[int]], rows: list[int] | np.ndarray, pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask for the sequences `rows` of `ids`."""
    width = max(len(ids[i]) for i in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        out[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = 1
    return out.to(device), mask.to(device)
