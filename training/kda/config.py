"""KDA run configuration (YAML or JSON), validated on creation and saved with every run.
Defaults are the paper's Table 3: AdamW 1e-4, batch 128, max length 100, up to 20 epochs,
early stopping with patience 3, gradient clipping 1.0, 8 heads, dropout 0.1."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, field_validator, model_validator

from training.kda import Variant
from training.settings_files import (
    BundleTarget,
    Count,
    LearningRate,
    Settings,
    Threads,
    UserPath,
)

# a KDA student serves Vietnamese sentiment unless its bundle says otherwise
BUNDLE_DEFAULTS = {"name": "vi-sentiment", "language": "vi", "task": "sentiment"}


class ParallelFile(Settings):
    """One table of pairs (`path` holds both columns), or two tables of translations
    (`path` the source side, `target_path` the target side) joined on `key_column`."""

    path: UserPath
    source_column: str = "en"
    target_column: str = "vi"
    target_path: UserPath | None = None
    key_column: str = "index_id"


class KDAConfig(Settings):
    teacher: str  # a fine-tuned classifier directory (encoder or decoder)
    target: str  # a model directory holding the target tokenizer and token embeddings
    parallel: list[ParallelFile] = Field(min_length=1)
    out: UserPath
    variant: Variant = "full"
    svd_rank: Count | None = None  # default: the teacher's width
    heads: Count = 8
    dropout: float = Field(default=0.1, ge=0, lt=1)
    learning_rate: LearningRate = 1e-4
    batch_size: Count = 128
    max_length: int = Field(default=100, ge=4)
    epochs: Count = 20
    patience: Count = 3
    heldout: float = Field(default=0.05, gt=0, lt=0.5)
    balance: str | float | dict[str, int] = "smallest"  # a ratio, or counts per label
    seed: int = 13
    # > 0: also match the teacher's sentence features (standardised MSE, this weight), see
    # training/kda/train.py; 0 is the paper's loss
    feature_weight: float = Field(default=0.0, ge=0)
    threads: Threads = 0
    limit: Count | None = None  # first N pairs per file (smoke runs)
    bundle: BundleTarget = Field(
        default_factory=lambda: BundleTarget.model_validate(BUNDLE_DEFAULTS)
    )

    @model_validator(mode="before")
    @classmethod
    def _bundle_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("bundle"), dict):
            data = data | {"bundle": BUNDLE_DEFAULTS | data["bundle"]}
        return data

    @field_validator("teacher", "target")
    @classmethod
    def _home(cls, value: str) -> str:
        return os.path.expanduser(value)

    @field_validator("balance")
    @classmethod
    def _balance(cls, value: str | float | dict[str, int]) -> str | float | dict[str, int]:
        if isinstance(value, str) and value not in ("smallest", "none"):
            raise ValueError(f"balance {value!r}: smallest, none, a ratio >= 1 or label counts")
        if isinstance(value, (int, float)) and value < 1:
            raise ValueError(f"a balance ratio must be >= 1, not {value}")
        return value
