"""The probe's configuration (YAML or JSON), a pydantic model: unknown keys are refused and
every value is checked, with the file and the field named in the error."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from training.settings_files import LabelledTable, Settings


class LabelledFile(LabelledTable):
    """One labelled table. `polar`: the file only knows negative/positive (SST-2): its rows
    are scored over those two logits, so it teaches "not neutral" without inventing neutral
    labels."""

    polar: bool = False
    weight: float = Field(default=1.0, gt=0)


class ProbeConfig(Settings):
    model: str = "e5-small"
    prefix: str = "query: "
    max_length: int = Field(default=128, ge=8)
    labels: list[str] = Field(default_factory=lambda: ["negative", "neutral", "positive"])
    train: list[LabelledFile] = Field(min_length=1)
    val: LabelledFile
    # L2 penalties tried; the one with the best validation macro-F1 is kept
    weight_decays: list[float] = Field(default_factory=lambda: [0.0, 1e-4, 1e-3, 1e-2])
    epochs: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=0.01, gt=0, lt=1)
    seed: int = 13
    out: Path
