"""Compression run configuration (YAML or JSON), validated on creation and saved with the run.

Defaults follow the paper scaled to e5-small: 12 -> 6 layers by stride, FFN 1536 -> 1024
(its 3072 -> 2048 ratio), hidden 384 -> 192, 40k pieces, task adapters with reduction factor
16 on the uncompressed model and 2 on the narrow students, AdamW 1e-4, batch 16, 20 epochs,
three seeds."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from training.compress.distill import DistillSettings
from training.compress.surgery import HeadLayout, LayerInit
from training.settings_files import (
    BundleTarget,
    Count,
    LearningRate,
    Settings,
    Threads,
    UserPath,
)


class HeadConfig(Settings):
    kind: Literal["adapter", "full"] = "adapter"  # head.HEAD_KINDS
    reduction: Count = 2  # the students'; the uncompressed baseline uses baseline_reduction
    baseline_reduction: Count = 16
    learning_rate: LearningRate = 1e-4
    # a grid instead: each model's first seed is trained at every rate, the one with the best
    # dev macro-F1 is kept for it and its other seeds
    learning_rates: list[LearningRate] | None = Field(default=None, min_length=1)
    batch_size: Count = 16
    epochs: Count = 20
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    # the stages between the baseline and the final student may use the first few seeds only,
    # where compute is short (None: all of them)
    intermediate_seeds: Count | None = None
    # stages between them that get no head at all (where compute is short)
    skip: list[str] = Field(default_factory=list)

    @field_validator("skip")
    @classmethod
    def _kept(cls, skip: list[str]) -> list[str]:
        kept = {"uncompressed", "vocab"} & set(skip)
        if kept:
            raise ValueError(f"head.skip cannot leave out {sorted(kept)}: the table needs them")
        return skip

    def seeds_for(self, model: str) -> list[int]:
        final = model in ("uncompressed", "vocab")
        return (
            self.seeds
            if final or self.intermediate_seeds is None
            else self.seeds[: self.intermediate_seeds]
        )


class TaskConfig(Settings):
    data: UserPath  # a folder with train.tsv, dev.tsv, test.tsv
    text_column: str = "text"
    label_column: str = "category"
    labels: list[str] | None = None  # default: labels.txt in the folder, else sorted train labels


class CompressConfig(Settings):
    language: str
    teacher: str  # model directory, an import name (e5-small) or a hub name
    corpus: UserPath  # the language's text, a sentence a line
    task: TaskConfig
    out: UserPath
    bundle: BundleTarget  # default: <language>-topic
    max_length: int = Field(default=128, ge=4)
    val_fraction: float = Field(default=0.02, gt=0, lt=0.5)
    max_texts: Count | None = None  # cap on distillation texts (small machines)
    layers: Count = 6
    layer_init: LayerInit = "stride"
    ffn: Count = 1024
    importance_texts: Count = 2000  # validation texts the FFN importance is accumulated over
    hidden: Count = 192
    head_layout: HeadLayout = "split"  # surgery.truncate_hidden: split (the paper's) or whole heads
    vocab_size: Count = 40_000
    # how the committed sources store the student: fp16, or int8 rows (half the size; the
    # figures are measured on the model rebuilt from them)
    source_weights: Literal["fp16", "int8-rows"] = "fp16"
    distill: DistillSettings = Field(default_factory=DistillSettings)
    distill_truncated: DistillSettings | None = None  # default: same as distill
    # task-aware distillation from the fine-tuned uncompressed baseline (None: stage skipped)
    task_distill: DistillSettings | None = None
    task_texts: Count | None = None  # its texts (default: the distillation texts)
    # a narrower student's classifier at the start of task-aware distillation: `fresh` (random),
    # or `mapped`: the teacher's classifier read through the map the truncation's distillation
    # learned (W_teacher · P, the teacher's bias), the map also starting the hidden-state
    # comparison, so the student starts near the teacher's topics instead of at chance
    task_start: Literal["fresh", "mapped"] = "fresh"
    # another run of the same language whose layers and prune stages (and head runs) this one
    # reuses: the candidates of one language differ only from the truncation on
    base: UserPath | None = None
    head: HeadConfig = Field(default_factory=HeadConfig)
    seed: int = 13
    threads: Threads = 0

    @model_validator(mode="before")
    @classmethod
    def _bundle_defaults(cls, data: Any) -> Any:
        """The bundle is `<language>-topic` in the run's language unless it says otherwise."""
        if not isinstance(data, dict) or "language" not in data:
            return data
        bundle = data.get("bundle")
        defaults = {"name": f"{data['language']}-topic", "language": data["language"]}
        if bundle is None:
            return data | {"bundle": defaults}
        if isinstance(bundle, dict):
            return data | {"bundle": {"language": data["language"]} | bundle}
        return data

    @field_validator("teacher")
    @classmethod
    def _home(cls, teacher: str) -> str:
        expanded = os.path.expanduser(teacher)
        return expanded if os.path.isdir(expanded) else teacher

    @property
    def second_distill(self) -> DistillSettings:
        return self.distill_truncated or self.distill
