"""A compressed student with its task head as committed sources, and its bundle rebuilt from
them. The student is small (a few million parameters with its trimmed vocabulary), so the
sources are simply its weights (fp16, or int8 rows at half the size: `source_weights`), its
encoder config and its trimmed tokenizer."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertConfig, BertModel

from training.compress.config import CompressConfig
from training.compress.encoders import ENCODER_CONFIG, WEIGHTS, load_encoder, student_weights
from training.compress.head import EncoderClassifier
from training.compress.reports import HeadsReport, KeptReport, ModelReport
from training.evaluate.metrics import scores
from training.export.rebuild import export_from_sources, predict
from training.sources import CompressedSources, read_sources, write_sources
from training.weights.rows import compact, fp16

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class Student:
    """What the pipeline hands over to be packed: the final encoder's directory, every
    model stage's report, the exported head and the heads stage's report."""

    encoder_dir: Path
    stages: dict[str, ModelReport]
    head_file: Path
    heads: HeadsReport


def pack(
    config: CompressConfig, student: Student, test: tuple[list[str], list[int]], out: Path
) -> None:
    """Write the final student + head to `out` with its SIB-200 test figures, measured on the
    model as rebuilt from the sources (so the figures are the bundle's, int8 rows included)."""
    final = student.heads.results["vocab"]
    encoder_dir, stages = student.encoder_dir, student.stages
    labels = student.heads.labels
    model = EncoderClassifier(load_encoder(encoder_dir), labels, final.head_kind, final.reduction)
    model.load_state_dict(torch.load(student.head_file, map_location="cpu"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    state = model.state_dict()
    stored = compact(state) if config.source_weights == "int8-rows" else fp16(state)
    save_file(stored, str(out / WEIGHTS))
    model.encoder.config.to_json_file(str(out / ENCODER_CONFIG))
    for name in TOKENIZER_FILES:
        if (encoder_dir / name).is_file():
            shutil.copyfile(encoder_dir / name, out / name)
    task_aware = not isinstance(stages["task"], KeptReport)
    test_texts, test_gold = test
    source: dict[str, Any] = {
        "kind": "compressed",
        "labels": labels,
        "head_kind": final.head_kind,
        "reduction": final.reduction,
        "max_length": config.max_length,
        "bundle": config.to_json()["bundle"],
        "provenance": {
            "method": "compressed monolingual student (layers, FFN pruning, "
            + ("" if isinstance(stages["truncate"], KeptReport) else "hidden truncation, ")
            + ("task-aware distillation, " if task_aware else "")
            + f"vocabulary trimming) + {final.head_kind} head",
            "teacher": Path(config.teacher).name,
            "distillation_text": str(config.corpus),
            "task_data": str(config.task.data),
            "layers": stages["vocab"].layers,
            "parameters": {name: report.parameters for name, report in stages.items()},
            "exported_seed": final.exported_seed,
            "source_weights": config.source_weights,
        },
        "evaluation": [],
        "reference": {"texts": test_texts[:200], "labels": None},
    }
    write_sources(out, source)
    rebuilt, tokenizer, _ = rebuild_classifier(out)
    predicted = predict_all(rebuilt, tokenizer, test_texts)
    result = scores(np.array(test_gold), np.array([labels.index(p) for p in predicted]), labels)
    source["evaluation"] = [
        {
            "dataset": f"sib200-{config.language}-test",
            "n": result["n"],
            "accuracy": result["accuracy"],
            "macro_f1": result["macro_f1"],
            "seeds": {
                "accuracy": final.test_accuracy.to_json(),
                "macro_f1": final.test_macro_f1.to_json(),
                "runs": len(final.runs),
            },
        }
    ]
    write_sources(out, source)


def predict_all(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> list[str]:
    return [
        label
        for start in range(0, len(texts), 32)
        for label in predict(model, tokenizer, texts[start : start + 32])
    ]


def rebuild_classifier(source_dir: Path) -> tuple[EncoderClassifier, Any, CompressedSources]:
    source: CompressedSources = read_sources(source_dir, CompressedSources)
    config = BertConfig.from_json_file(str(source_dir / ENCODER_CONFIG))
    encoder = BertModel(config, add_pooling_layer=False)
    model = EncoderClassifier(encoder, source.labels, source.head_kind, source.reduction)
    model.load_state_dict(student_weights(source_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(source_dir))
    tokenizer.model_max_length = source.max_length
    return model.eval(), tokenizer, source


def build(source_dir: Path, out: Path, record: bool = False) -> dict[str, Any]:
    model, tokenizer, source = rebuild_classifier(source_dir)
    description = f"compressed {source.bundle.language} student ({source.head_kind} head)"
    return export_from_sources(model, tokenizer, source_dir, out, record, description)
