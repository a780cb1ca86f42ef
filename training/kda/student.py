"""The KDA student: frozen target embeddings -> trained adapter -> the frozen teacher from its
embedding output onward (its own position embeddings and normalisation) -> its frozen head.

Two kinds of teacher. Encoders (BERT/RoBERTa-like, a `classifier` head) take the adapter's
output as `inputs_embeds`. Decoders (GPT-2-like, a `score` head) pool at the last real token:
the student does that pooling itself from the attention mask, so batches may be padded on
the right whatever the teacher's tokenizer prefers, as the service pads them."""

from __future__ import annotations

from typing import Any, Literal

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


def teacher_outputs(
    teacher: Any,
    kind: TeacherKind,
    attention_mask: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits and its sentence features, from token ids or from embeddings,
    right-padded batches. The features are the last layer's hidden state at the token the head
    reads (the first for encoders, the last real one for decoders) next to the mean over real
    tokens: 2 x width numbers per sentence where the logits give a handful, which is what the
    optional feature loss distils."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    if kind == "encoder":
        out = teacher(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_hidden_states=True,
        )
        hidden = out.hidden_states[-1]
        logits: torch.Tensor = out.logits
        read = hidden[:, 0]
    else:
        body = teacher.base_model
        hidden = body(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        ).last_hidden_state
        last = attention_mask.long().sum(dim=1) - 1
        read = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        logits = teacher.score(read)
    mean = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1)
    return logits, torch.cat([read.float(), mean], dim=-1)


def teacher_logits(
    teacher: Any,
    kind: TeacherKind,
    attention_mask: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The teacher's logits from token ids or from embeddings, right-padded batches."""
    return teacher_outputs(teacher, kind, attention_mask, input_ids, inputs_embeds)[0]


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
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: bool = False
    ) -> SequenceClassifierOutput:
        """Logits; with `features`, the sentence features too (as the one hidden state), so a
        distributed wrapper that only sees `forward` still sees both."""
        logits, found = self.with_features(input_ids, attention_mask)
        return SequenceClassifierOutput(logits=logits, hidden_states=(found,) if features else None)

    def with_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the teacher-side sentence features (see `teacher_outputs`)."""
        adapted = self.adapter(self.embeddings(input_ids), attention_mask)
        return teacher_outputs(self.teacher, self.kind, attention_mask, inputs_embeds=adapted)
