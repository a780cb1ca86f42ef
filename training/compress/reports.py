"""The compression stages' `report.json` files as models: what each stage measured, checked
when it is written and when it is read back (a stage skipped as done, a base run's shared
stage, the table, the packer), so a report of another shape fails naming its field instead
of a key missing three modules later.

Kept free of torch, like the table that reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

REPORT = "report.json"


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float | None = None  # the stage's wall time, added when it finishes

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class Shape(BaseModel):
    """Parameters and the sizes the compression stages change."""

    model_config = ConfigDict(extra="forbid")
    parameters: int
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocabulary: int


class ModelReport(Report, Shape):
    """A stage that ends with a model of its own (its directory's `model/`)."""

    size_bytes: int


class KeptReport(ModelReport):
    """A stage with nothing to do (no narrower width, no task distillation settings): its
    model is the one `same_as` made."""

    same_as: str
    skipped: str | None = None


class LayersReport(ModelReport):
    teacher: Shape
    teacher_layers: list[int]  # the teacher layer each student layer starts from
    distillation: dict[str, Any]


class PruneReport(ModelReport):
    importance_texts: int
    val_before: dict[str, float]
    val_after: dict[str, float]


class TruncateReport(ModelReport):
    teacher: str
    distillation: dict[str, Any]


class TaskReport(ModelReport):
    teacher: str
    teacher_head: dict[str, Any]  # its file, seed and learning rate
    distillation: dict[str, Any]
    task_texts: int
    # the student's classifier at the start: the teacher's (same width), the teacher's through
    # the truncation's learned map (`task_start: mapped`), or fresh; absent in older reports
    classifier_start: Literal["copied", "mapped", "fresh"] | None = None
    distilled_classifier: dict[str, float]  # the student's own classifier, no label trained it


class VocabReport(ModelReport):
    trim: dict[str, Any]


class Spread(BaseModel):
    """Mean and spread of one figure over a model's seeds."""

    mean: float
    std: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


class HeadResults(BaseModel):
    """One model's heads: the learning rate chosen on dev, its seeds' runs, their spread."""

    model_config = ConfigDict(extra="forbid")
    encoder: str
    encoder_parameters: int
    head_kind: str
    reduction: int
    trainable_parameters: int
    test_accuracy: Spread
    test_macro_f1: Spread
    dev_macro_f1: Spread
    best_seed: int
    exported_seed: int | None = None
    learning_rate: float
    learning_rate_search: dict[str, float]
    tokens_per_text: float
    runs: list[dict[str, Any]]


class HeadsReport(Report):
    labels: list[str]
    results: dict[str, HeadResults]


class ExportReport(Report):
    sources: str
    bundle: str | None = None  # the bundle is built by the main process only
    variants: list[str] = []
    parity: dict[str, dict[str, Any]] = {}
    reference_texts: int | None = None
    reference_checked: bool | None = None


MODELS: dict[str, type[Report]] = {
    "layers": LayersReport,
    "prune": PruneReport,
    "truncate": TruncateReport,
    "task": TaskReport,
    "vocab": VocabReport,
    "heads": HeadsReport,
    "export": ExportReport,
}


def parsed(stage: str, data: dict[str, Any], source: Path | str) -> Report:
    """`data` as `stage`'s report (a kept stage's when it names `same_as`), or a ValueError
    naming the source and every bad field."""
    model = KeptReport if "same_as" in data else MODELS[stage]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"{source}: not a {stage} stage report ({problems})") from None


def read_report(folder: Path, stage: str) -> Report:
    path = folder / REPORT
    return parsed(stage, json.loads(path.read_text()), path)


def write_report(folder: Path, stage: str, data: dict[str, Any]) -> Report:
    """Check `data` as `stage`'s report and write it; the model is returned."""
    report = parsed(stage, data, f"the {stage} stage")
    text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    (folder / REPORT).write_text(text)
    return report
