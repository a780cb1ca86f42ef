"""The one export description (names, axes, opset, tolerances) and the torch -> ONNX step."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel


@dataclass(frozen=True)
class ExportSpec:
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    output_name: str = "logits"
    opset: int = 17
    # Parity: fp32 must match PyTorch to `atol`; variants are judged on label agreement.
    atol: float = 1e-4
    fp16_atol: float = 5e-2
    min_variant_agreement: float = 0.95
    batch_sizes: tuple[int, ...] = (1, 2, 8)
    lengths: tuple[int, ...] = (4, 16, 64)
    token_level: bool = False  # logits per token (batch x sequence x labels), not per text
    dynamic_axes: dict[str, dict[int, str]] = field(init=False)

    def __post_init__(self) -> None:
        if self.input_names[:1] != ("input_ids",):
            raise ValueError(f"input_names must start with input_ids, got {self.input_names}")
        if not 7 <= self.opset <= 21:
            raise ValueError(f"opset {self.opset} is outside the supported range 7..21")
        if not 0.0 <= self.min_variant_agreement <= 1.0:
            raise ValueError(
                f"min_variant_agreement must be in [0, 1], got {self.min_variant_agreement}"
            )
        axes = {name: {0: "batch", 1: "sequence"} for name in self.input_names}
        axes[self.output_name] = {0: "batch", 1: "sequence"} if self.token_level else {0: "batch"}
        object.__setattr__(self, "dynamic_axes", axes)


class LogitsOnly(nn.Module):
    """Wraps a Hugging Face classifier so the graph has named tensor inputs and one output."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        logits: torch.Tensor = self.model(**kwargs).logits
        return logits


@contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Trace attention as plain MatMul/Softmax. The SDPA path records extra mask and shape
    arithmetic (the 6-layer 192-wide student: 715 graph nodes instead of 562) that onnxruntime
    runs as separate small kernels, which costs most on small students (README, Compression:
    speed). Each transformers model inside `model` gets its own setting back afterwards."""
    switched = [
        (module, module.config._attn_implementation)
        for module in model.modules()
        if isinstance(module, PreTrainedModel)
    ]
    for module, _ in switched:
        module.set_attn_implementation("eager")
    try:
        yield
    finally:
        for module, previous in reversed(switched):
            module.set_attn_implementation(previous)


def export_onnx(model: nn.Module, path: Path, spec: ExportSpec, vocab_size: int) -> None:
    """Trace `model` to `path` with dynamic batch and sequence axes, attention as eager ops."""
    wrapper = LogitsOnly(model, spec.input_names).eval()
    example_ids = torch.randint(0, vocab_size, (2, 8))
    examples = {
        "input_ids": example_ids,
        "attention_mask": torch.ones_like(example_ids),
        "token_type_ids": torch.zeros_like(example_ids),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad(), eager_attention(model):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(examples[name] for name in spec.input_names),
            str(path),
            input_names=list(spec.input_names),
            output_names=[spec.output_name],
            dynamic_axes=spec.dynamic_axes,
            opset_version=spec.opset,
            dynamo=False,
        )
    model.eval()  # the exporter restores the wrapper's mode, which is recursive
