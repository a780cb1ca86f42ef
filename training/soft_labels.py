"""A soft-label directory: what `ensemble label` writes and `kda adapt` learns from.

Two methods meet at these files, so their names and the report's shape live here, between
them: `texts.json` (the texts, in order), `labels.npz` (`probs`, `heldout`, `labels`) and
`ensemble-report.json` (how each member was corrected). The report is checked when written
and when read back, so a directory of another shape fails naming its field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from training.settings_files import validated

TEXTS = "texts.json"
LABELS = "labels.npz"
REPORT = "ensemble-report.json"
Target = Literal["uniform", "em"]


@dataclass(frozen=True)
class SoftLabels:
    """The texts, the ensemble's probabilities for each, and which are held out."""

    texts: list[str]
    probs: np.ndarray  # (texts, labels), float32
    heldout: np.ndarray  # (texts,), bool
    labels: list[str]

    def write(self, directory: Path) -> None:
        (directory / TEXTS).write_text(json.dumps(self.texts, ensure_ascii=False))
        np.savez(
            directory / LABELS, probs=self.probs, heldout=self.heldout, labels=np.array(self.labels)
        )

    @classmethod
    def read(cls, directory: Path) -> SoftLabels:
        for name in (TEXTS, LABELS):
            if not (directory / name).is_file():
                raise FileNotFoundError(
                    f"{directory / name} is missing: run `python -m training ensemble label` first"
                )
        saved = np.load(directory / LABELS)
        texts = json.loads((directory / TEXTS).read_text())
        probs = saved["probs"].astype(np.float32)
        if probs.shape != (len(texts), len(saved["labels"])):
            raise ValueError(
                f"{directory / LABELS} holds {probs.shape} probabilities for {len(texts)} texts "
                f"and {len(saved['labels'])} labels"
            )
        return cls(texts, probs, saved["heldout"], [str(x) for x in saved["labels"]])


class Member(BaseModel):
    """One member's outputs on the texts and the prior correction applied to them."""

    model_config = ConfigDict(extra="forbid")
    member: str  # its bundle or probe directory
    train_prior: list[float]
    em_prior: list[float]
    em_iterations: int
    target_prior: list[float]
    logit_shift: list[float]
    predicted_share: list[float]  # share of texts each class wins, before the correction
    corrected_share: list[float]


class EnsembleReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[str]
    target: Target
    texts: int
    heldout: int
    members: list[Member]
    member_agreement: float  # argmax agreement of the first and the last member
    ensemble_share: list[float]

    def write(self, directory: Path) -> None:
        (directory / REPORT).write_text(self.model_dump_json(indent=2))

    @classmethod
    def read(cls, directory: Path) -> EnsembleReport:
        path = directory / REPORT
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `python -m training ensemble label`")
        return validated(cls, json.loads(path.read_text()), path)
