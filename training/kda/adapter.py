"""The KDA adapter (paper section 3.2, Figure 2, Table 3).

    x0  = Dropout(Linear(target embeddings))                    (projects d_target -> d)
    x1  = x0 + LayerNorm(CrossAttentionBlock(x0))               keys/values: an SVD basis of
                                                                the teacher's embeddings
    out = x1 + SelfAttentionBlock(x1)                           RoPE on queries and keys

Ablation variants (Table 5): `linear` (x0), `linear+self`, `linear+cross` (x1), `full`.

Each block's position-wise FFN is one Linear + ReLU of width d: with 8 heads this gives the
paper's "about 6.4 million" trainable parameters at d = 768 (6.50M), where a two-layer FFN
would give 7.68M.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from training.kda import VARIANTS


def svd_basis(embeddings: torch.Tensor, rank: int) -> torch.Tensor:
    """The top-`rank` right singular directions of the teacher's embedding matrix, scaled by
    their singular values / sqrt(rows) so they keep the embeddings' magnitude: (rank, d)."""
    rank = min(rank, *embeddings.shape)
    _, s, vh = torch.linalg.svd(embeddings.float(), full_matrices=False)
    return vh[:rank] * (s[:rank, None] / math.sqrt(embeddings.shape[0]))


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding on (..., L, D): pairs (i, i + D/2) rotated by pos * theta_i."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class FeedForward(nn.Sequential):
    def __init__(self, d: int, width: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(d, width), nn.ReLU(), nn.Dropout(dropout))
        if width != d:
            self.append(nn.Linear(width, d))


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None
) -> torch.Tensor:
    """Scaled dot-product attention written out (exports to any ONNX opset)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


class CrossAttentionBlock(nn.Module):
    """Queries from the input; keys and values projected from the teacher's SVD basis."""

    def __init__(self, d: int, basis: torch.Tensor, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.register_buffer("basis", basis.clone(), persistent=True)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(basis.shape[1], d)
        self.v = nn.Linear(basis.shape[1], d)
        self.o = nn.Linear(d, d)
        self.ffn = FeedForward(d, ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        h = self.heads
        q = self.q(x).view(b, length, h, d // h).transpose(1, 2)
        k = self.k(self.basis).view(1, -1, h, d // h).transpose(1, 2)
        v = self.v(self.basis).view(1, -1, h, d // h).transpose(1, 2)
        ctx = _attend(q, k, v, None).transpose(1, 2).reshape(b, length, d)
        return self.ffn(self.o(ctx))


class SelfAttentionBlock(nn.Module):
    """Self-attention with RoPE on queries and keys, then LayerNorm, FFN, Dropout."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, ffn)
        self.dropout = nn.Dropout(dropout)

    def scores(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Attention logits (B, H, L, L): exposed so tests can check RoPE is relative."""
        q, k = self._heads(self.q(x)), self._heads(self.k(x))
        q, k = rotate(q, positions), rotate(k, positions)
        return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, length, d = t.shape
        return t.view(b, length, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        positions = torch.arange(length, device=x.device)
        q = rotate(self._heads(self.q(x)), positions)
        k = rotate(self._heads(self.k(x)), positions)
        ctx = _attend(q, k, self._heads(self.v(x)), mask.bool())
        out = self.o(ctx.transpose(1, 2).reshape(b, length, d))
        return self.dropout(self.ffn(self.norm(out)))


class KDAAdapter(nn.Module):
    def __init__(
        self,
        d_target: int,
        d_teacher: int,
        basis: torch.Tensor | None,
        variant: str = "full",
        heads: int = 8,
        ffn: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown adapter variant {variant!r}; choose from {VARIANTS}")
        if d_teacher % heads:
            raise ValueError(f"teacher width {d_teacher} is not divisible by {heads} heads")
        self.variant = variant
        ffn = ffn or d_teacher
        self.linear = nn.Linear(d_target, d_teacher)
        self.dropout = nn.Dropout(dropout)
        self.cross: CrossAttentionBlock | None = None
        self.cross_norm: nn.LayerNorm | None = None
        self.self_block: SelfAttentionBlock | None = None
        if variant in ("linear+cross", "full"):
            if basis is None:
                raise ValueError(f"variant {variant!r} needs the teacher's embedding basis")
            self.cross = CrossAttentionBlock(d_teacher, basis, heads, ffn)
            self.cross_norm = nn.LayerNorm(d_teacher)
        if variant in ("linear+self", "full"):
            self.self_block = SelfAttentionBlock(d_teacher, heads, ffn, dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.linear(embeddings))
        if self.cross is not None and self.cross_norm is not None:
            x = x + self.cross_norm(self.cross(x))
        if self.self_block is not None:
            x = x + self.self_block(x, mask)
        return x

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
