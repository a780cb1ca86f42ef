"""Model surgery on BERT-family encoders (BERT, XLM-R, e5): fewer layers, narrower FFNs, a
smaller hidden size. Each function returns a new model and leaves its input untouched; the
weights kept are copied exactly, so each stage starts where the previous one ended."""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args

import torch
from torch import nn
from transformers import BertConfig, BertModel

from training.batches import pad_rows

LayerInit = Literal["stride", "last", "first"]
HeadLayout = Literal["split", "whole"]
LAYER_INITS: tuple[str, ...] = get_args(LayerInit)
HEAD_LAYOUTS: tuple[str, ...] = get_args(HeadLayout)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_choice(total: int, keep: int, init: str) -> list[int]:
    """Teacher layers the student starts from. `stride` takes every (total/keep)-th layer
    ending with the last one (1, 3, ..., 11 of 12), which the paper found best for XLM-R."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if init == "stride":
        step = total / keep
        return [round((i + 1) * step) - 1 for i in range(keep)]
    if init == "last":
        return list(range(total - keep, total))
    if init == "first":
        return list(range(keep))
    raise ValueError(f"unknown layer initialisation {init!r}; choose one of {LAYER_INITS}")


def reduce_layers(model: BertModel, keep: int, init: str = "stride") -> tuple[BertModel, list[int]]:
    chosen = layer_choice(model.config.num_hidden_layers, keep, init)
    student = copy.deepcopy(model)
    student.encoder.layer = nn.ModuleList(copy.deepcopy(model.encoder.layer[i]) for i in chosen)
    student.config.num_hidden_layers = keep
    return student, chosen


def _slice_linear(
    layer: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None
) -> nn.Linear:
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else None
    if rows is not None:
        weight = weight[rows]
        bias = bias[rows] if bias is not None else None
    if cols is not None:
        weight = weight[:, cols]
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    out.weight.data.copy_(weight)
    if bias is not None:
        out.bias.data.copy_(bias)
    return out


def prune_ffn(model: BertModel, keep: list[torch.Tensor]) -> BertModel:
    """Keep, in each layer, the FFN neurons `keep[layer]` (indices into the intermediate size,
    e.g. the most important ones), in their original order."""
    if len(keep) != model.config.num_hidden_layers:
        raise ValueError(f"{len(keep)} neuron lists for {model.config.num_hidden_layers} layers")
    widths = {len(k) for k in keep}
    if len(widths) != 1:
        raise ValueError(f"every layer must keep the same FFN width, got {sorted(widths)}")
    student = copy.deepcopy(model)
    layers: list[Any] = list(student.encoder.layer)  # BertLayer modules (untyped in HF)
    for layer, neurons in zip(layers, keep, strict=True):
        neurons = torch.sort(neurons).values
        layer.intermediate.dense = _slice_linear(layer.intermediate.dense, neurons, None)
        layer.output.dense = _slice_linear(layer.output.dense, None, neurons)
    student.config.intermediate_size = widths.pop()
    return student


def ffn_contribution(
    model: BertModel, ids: list[list[int]], pad_id: int, batch_size: int = 32
) -> list[torch.Tensor]:
    """Per layer, per FFN neuron: its mean |activation| over the real tokens of `ids` times
    the norm of its output column, what removing it takes from the layer's output on that
    text. Needs no teacher and no loss, so a trained student can be cut for a faster shape
    before the training that repairs it (the neurons it keeps: `most_important`)."""
    layers: list[Any] = list(model.encoder.layer)
    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    tokens = 0
    mask: torch.Tensor | None = None

    def hook(index: int) -> Any:
        def add(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            assert mask is not None
            sums[index] += (output.abs() * mask[..., None]).sum((0, 1)).detach().cpu()

        return add

    handles = [layer.intermediate.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, len(ids), batch_size):
                rows = list(range(start, min(start + batch_size, len(ids))))
                x, mask = pad_rows(ids, rows, pad_id, device)
                model(input_ids=x, attention_mask=mask)
                tokens += int(mask.sum())
    finally:
        for handle in handles:
            handle.remove()
    norms = [layer.output.dense.weight.detach().norm(dim=0).cpu() for layer in layers]
    return [s / max(tokens, 1) * n for s, n in zip(sums, norms, strict=True)]


def _slice_norm(norm: nn.LayerNorm, k: int) -> nn.LayerNorm:
    out = nn.LayerNorm(k, eps=norm.eps)
    out.weight.data.copy_(norm.weight.detach()[:k])
    out.bias.data.copy_(norm.bias.detach()[:k])
    return out


def truncate_hidden(model: BertModel, k: int, heads: str = "split") -> BertModel:
    """Keep the first `k` hidden dimensions everywhere: embeddings, attention projections,
    FFN inputs and outputs, layer norms.

    The attention projections' first k outputs are the teacher's first k / d heads (d wide).
    `split` (the paper's layout) keeps the head count, so those dimensions are regrouped into
    heads k / count wide: every teacher head is cut in two and starts with new dot products.
    `whole` keeps them as the teacher's first k / d heads at their full width d (k must be a
    multiple of d): each keeps its query-key pairing and scaling, and half as many attention
    softmaxes run (under int8 onnxruntime at batch 32 the softmax is about a quarter of a
    12-head 192-wide student's time: README, Compression, Speed)."""
    if heads not in HEAD_LAYOUTS:
        raise ValueError(f"unknown head layout {heads!r}; choose from {HEAD_LAYOUTS}")
    count = model.config.num_attention_heads
    width = model.config.hidden_size // count
    if not 0 < k <= model.config.hidden_size:
        raise ValueError(f"hidden size {k} must be in 1..{model.config.hidden_size}")
    if heads == "split" and k % count:
        raise ValueError(f"hidden size {k} must be a positive multiple of the {count} heads")
    if heads == "whole" and k % width:
        raise ValueError(f"hidden size {k} must be a multiple of the {width}-wide heads")
    first = torch.arange(k)
    config = BertConfig.from_dict(model.config.to_dict())
    config.hidden_size = k
    if heads == "whole":
        config.num_attention_heads = k // width
    student = BertModel(config, add_pooling_layer=model.pooler is not None)
    emb, new_emb = model.embeddings, student.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(new_emb, name).weight.data.copy_(getattr(emb, name).weight.detach()[:, :k])
    new_emb.LayerNorm = _slice_norm(emb.LayerNorm, k)
    pairs: list[tuple[Any, Any]] = list(
        zip(model.encoder.layer, student.encoder.layer, strict=True)
    )
    for old, new in pairs:
        attn, new_attn = old.attention, new.attention
        for name in ("query", "key", "value"):
            setattr(new_attn.self, name, _slice_linear(getattr(attn.self, name), first, first))
        new_attn.output.dense = _slice_linear(attn.output.dense, first, first)
        new_attn.output.LayerNorm = _slice_norm(attn.output.LayerNorm, k)
        new.intermediate.dense = _slice_linear(old.intermediate.dense, None, first)
        new.output.dense = _slice_linear(old.output.dense, first, None)
        new.output.LayerNorm = _slice_norm(old.output.LayerNorm, k)
    if model.pooler is not None and student.pooler is not None:
        student.pooler.dense = _slice_linear(model.pooler.dense, first, first)
    return student
