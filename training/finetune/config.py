"""The fine-tuning configuration: validated on creation, saved beside every checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from training.settings_files import (
    Count,
    LabelledTable,
    LearningRate,
    Settings,
    Threads,
    UserPath,
)


class TrainingFile(LabelledTable):
    """A further training file. `loss: own_labels` is a softmax over the labels the file can
    name only: a two-class file (SST-2) then teaches polarity without saying how neutral its
    sentences are; `all_labels` is the usual cross-entropy, which also pushes the other labels
    (neutral) down on them."""

    loss: Literal["all_labels", "own_labels"] = "all_labels"


class FinetuneConfig(Settings):
    model: str  # a model directory, a known import name (minilm, e5-small) or a hub name
    train: UserPath
    val: UserPath
    out: UserPath
    labels: list[str] = Field(default_factory=lambda: ["negative", "neutral", "positive"])
    text_column: str = "text"
    label_column: str = "label"
    text_prefix: str = ""  # e.g. "query: " for e5 models
    max_length: int = Field(default=128, ge=8)
    batch_size: Count = 32
    learning_rate: LearningRate = 5e-5
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    epochs: Count = 3
    evals_per_epoch: Count = 2
    freeze_embeddings: bool = False
    seed: int = 13
    threads: Threads = 0
    limit: Count | None = None  # use only the first N training rows (smoke tests)
    # more training files, mixed in with `train` (e.g. airline tweets, SST-2)
    extra_train: list[TrainingFile] = Field(default_factory=list)
    # files only scored at each evaluation (never chosen on): accuracy among their own labels
    # and the share of their texts the model gives a label they do not have (e.g. neutral)
    watch: list[LabelledTable] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least two distinct names, got {labels}")
        return labels

    @model_validator(mode="after")
    def _files_name_known_labels(self) -> FinetuneConfig:
        for item in [*self.extra_train, *self.watch]:
            unknown = sorted(set(item.label_map.values()) - set(self.labels))
            if unknown:
                raise ValueError(
                    f"{item.path.name}: label_map names {unknown}, not in {self.labels}"
                )
        return self
