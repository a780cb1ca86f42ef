"""The fine-tuning configuration: validated on creation, saved beside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.settings_files import read_settings


@dataclass
class FinetuneConfig:
    model: str  # a model directory, a known import name (minilm, e5-small) or a hub name
    train: Path
    val: Path
    out: Path
    labels: list[str] = field(default_factory=lambda: ["negative", "neutral", "positive"])
    text_column: str = "text"
    label_column: str = "label"
    text_prefix: str = ""  # e.g. "query: " for e5 models
    max_length: int = 128
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    epochs: int = 3
    evals_per_epoch: int = 2
    freeze_embeddings: bool = False
    seed: int = 13
    threads: int = 0  # 0: torch's default
    limit: int | None = None  # use only the first N training rows (smoke tests)

    def __post_init__(self) -> None:
        self.train, self.val, self.out = Path(self.train), Path(self.val), Path(self.out)
        checks = {
            "max_length": self.max_length >= 8,
            "batch_size": self.batch_size >= 1,
            "learning_rate": 0 < self.learning_rate < 1,
            "epochs": self.epochs >= 1,
            "evals_per_epoch": self.evals_per_epoch >= 1,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "labels": len(self.labels) >= 2 and len(set(self.labels)) == len(self.labels),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid fine-tuning setting {name}={getattr(self, name)!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> FinetuneConfig:
        data = read_settings(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)
