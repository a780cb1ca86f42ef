"""Loading the encoders the compression work starts from or ends with: a model directory (the
uncompressed teacher, a stage's student), an importable name (e5-small), or a compressed
student's committed sources (`models/sources/<lang>-topic`: the body the task heads share)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel

from training.weights.resolve import resolve_model
from training.weights.rows import expand

# the files of a compressed student's sources
WEIGHTS, ENCODER_CONFIG = "model.safetensors", "encoder-config.json"


def load_encoder(path: Path | str) -> BertModel:
    """A model directory's encoder, fp32, in eval mode."""
    model: BertModel = BertModel.from_pretrained(
        str(path), dtype=torch.float32, add_pooling_layer=False
    )
    return model.eval()


def load_baseline(reference: str) -> tuple[BertModel, Any]:
    """The uncompressed encoder (a directory or an importable name such as e5-small) and its
    tokenizer."""
    path = resolve_model(reference)
    return load_encoder(path), AutoTokenizer.from_pretrained(path)


def student_weights(source_dir: Path) -> dict[str, torch.Tensor]:
    """A student's committed weights in fp32, stored as fp16 or as int8 rows
    (training/weights/rows.py: the file says which by its scales)."""
    return expand(load_file(str(source_dir / WEIGHTS)))


def load_student(source_dir: Path) -> tuple[BertModel, Any]:
    """The student body from compressed sources: its encoder (task adapters left out) and
    its tokenizer."""
    config = BertConfig.from_json_file(str(source_dir / ENCODER_CONFIG))
    encoder = BertModel(config, add_pooling_layer=False)
    weights = student_weights(source_dir)
    body = {
        key.removeprefix("encoder."): value
        for key, value in weights.items()
        if key.startswith("encoder.") and ".adapter." not in key
    }
    encoder.load_state_dict(body)
    return encoder.eval(), AutoTokenizer.from_pretrained(str(source_dir))
