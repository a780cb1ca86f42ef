"""The last step of every rebuild from committed sources (`models/sources/<name>/`): check the
rebuilt model against the reference predictions the sources record (or record them), then
export the bundle with parity. Shared by KDA students and compressed students."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from training.batches import pad_rows
from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec
from training.sources import DIGEST_KEY, digest, read_sources, write_sources

Predictor = Callable[[nn.Module, PreTrainedTokenizerFast, list[str]], list[str]]


@torch.no_grad()
def predict(model: nn.Module, tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> list[str]:
    """Label names for `texts`, one batch padded on the right as the service pads."""
    ids = [list(x) for x in tokenizer(texts, truncation=True)["input_ids"]]
    pad = tokenizer.pad_token_id or 0
    x, mask = pad_rows(ids, list(range(len(ids))), pad, torch.device("cpu"))
    labels: dict[int, str] = model.config.id2label  # type: ignore[union-attr,assignment]
    return [labels[int(i)] for i in model(input_ids=x, attention_mask=mask).logits.argmax(-1)]


def export_from_sources(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    source_dir: Path,
    out: Path,
    record: bool,
    description: str,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """With `record`, store the model's reference predictions in the sources; otherwise refuse a
    model that changes any of them. Then write the bundle the sources describe to `out`."""
    source = read_sources(source_dir)
    reference = source.reference
    labels = (predictor or predict)(model.eval(), tokenizer, reference.texts)
    if record:
        reference.labels = labels
        write_sources(source_dir, source)
    elif reference.labels is not None and labels != reference.labels:
        changed = sum(a != b for a, b in zip(labels, reference.labels, strict=True))
        raise ValueError(
            f"the model rebuilt from {source_dir} changes {changed} of "
            f"{len(labels)} reference predictions: the base model or the sources differ"
        )
    info = source.bundle
    config: Any = model.config
    spec = BundleSpec(
        name=info.name,
        version=info.version,
        task=info.task,
        language=info.language,
        labels=[config.id2label[i] for i in range(config.num_labels)],
        max_length=source.max_length,
        variants=tuple(info.variants),
        default=info.default,
        label_scheme=info.label_scheme,
        description=description,
        provenance=source.provenance | {DIGEST_KEY: digest(source_dir)},
        evaluation=source.evaluation,
        preprocessing=source.preprocessing,
    )
    export = ExportSpec(min_variant_agreement=info.min_variant_agreement)
    manifest = write_bundle(model, tokenizer, spec, out, reference.texts[:64], export)
    return {
        "bundle": str(out),
        "variants": sorted(manifest["variants"]),
        "parity": manifest["parity"],
        "reference_texts": len(labels),
        "reference_checked": reference.labels is not None and not record,
    }
