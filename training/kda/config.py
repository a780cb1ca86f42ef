"""KDA run configuration (YAML or JSON), validated on creation and saved with every run.
Defaults are the paper's Table 3: AdamW 1e-4, batch 128, max length 100, up to 20 epochs,
early stopping with patience 3, gradient clipping 1.0, 8 heads, dropout 0.1."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.kda import VARIANTS
from training.settings_files import plain, read_settings


@dataclass
class ParallelFile:
    """One table of pairs (`path` holds both columns), or two tables of translations
    (`path` the source side, `target_path` the target side) joined on `key_column`."""

    path: Path
    source_column: str = "en"
    target_column: str = "vi"
    target_path: Path | None = None
    key_column: str = "index_id"

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if self.target_path is not None:
            self.target_path = Path(self.target_path).expanduser()


@dataclass
class BundleInfo:
    name: str = "vi-sentiment"
    version: str = "0.1.0"
    language: str = "vi"
    task: str = "sentiment"
    variants: list[str] = field(default_factory=lambda: ["fp32", "fp16", "int8"])
    min_variant_agreement: float = 0.99
    out: Path | None = None  # default: models/<name>

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser() if self.out else Path("models") / self.name


@dataclass
class KDAConfig:
    teacher: str  # a fine-tuned classifier directory (encoder or decoder)
    target: str  # a model directory holding the target tokenizer and token embeddings
    parallel: list[ParallelFile]
    out: Path
    variant: str = "full"
    svd_rank: int | None = None  # default: the teacher's width
    heads: int = 8
    dropout: float = 0.1
    learning_rate: float = 1e-4
    batch_size: int = 128
    max_length: int = 100
    epochs: int = 20
    patience: int = 3
    heldout: float = 0.05
    balance: str | float | dict[str, int] = "smallest"  # a ratio, or counts per label
    seed: int = 13
    # > 0: also match the teacher's sentence features (standardised MSE, this weight), see
    # training/kda/train.py; 0 is the paper's loss
    feature_weight: float = 0.0
    threads: int = 0
    limit: int | None = None  # first N pairs per file (smoke runs)
    bundle: BundleInfo = field(default_factory=BundleInfo)

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser()
        self.teacher = os.path.expanduser(self.teacher)
        self.target = os.path.expanduser(self.target)
        self.parallel = [
            p if isinstance(p, ParallelFile) else ParallelFile(**p) for p in self.parallel
        ]
        if isinstance(self.bundle, dict):
            self.bundle = BundleInfo(**self.bundle)
        problems = {
            "variant": self.variant in VARIANTS,
            "parallel": len(self.parallel) > 0,
            "learning_rate": 0 < self.learning_rate < 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 4,
            "epochs": self.epochs >= 1,
            "patience": self.patience >= 1,
            "heldout": 0 < self.heldout < 0.5,
            "feature_weight": self.feature_weight >= 0,
            "balance": self.balance in ("smallest", "none")
            or isinstance(self.balance, dict)
            or (isinstance(self.balance, (int, float)) and self.balance >= 1),
        }
        for name, ok in problems.items():
            if not ok:
                raise ValueError(f"invalid KDA setting {name}={getattr(self, name)!r}")

    @classmethod
    def from_file(cls, path: Path) -> KDAConfig:
        return cls(**read_settings(path))

    def to_json(self) -> dict[str, Any]:
        return plain(self)
