"""The fine-tuning configuration: validated on creation, saved beside every checkpoint."""

from __future__ import annotations

from pydantic import Field, field_validator

from training.settings_files import Count, LearningRate, Settings, Threads, UserPath


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

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least two distinct names, got {labels}")
        return labels
