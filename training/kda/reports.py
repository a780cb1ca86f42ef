"""The KDA runs' report files as models: `kda-report.json` (a distillation) and
`adapt-report.json` (an in-domain adaptation), checked when written and when the packer reads
them back, so a report of another shape fails naming its field instead of a key missing in
the packer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from training.settings_files import validated

KDA_REPORT = "kda-report.json"
ADAPT_REPORT = "adapt-report.json"

R = TypeVar("R", bound="RunReport")


class RunReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def write(self, path: Path) -> None:
        # absent, not null: a run that did not export has no `bundle`, one without a prior
        # correction no `prior`
        path.write_text(json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2))

    @classmethod
    def read(cls: type[R], path: Path) -> R:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the run has not finished")
        return validated(cls, json.loads(path.read_text()), path)


class FitReport(RunReport):
    """What the adapter's training measured (training/kda/train.py `fit`)."""

    epochs: int
    stopped_early: bool
    initial_heldout: dict[str, float] | None  # None: an export-only rerun of an old run
    best_heldout_loss: float
    heldout_agreement: float
    history: list[dict[str, Any]]  # the loop's evaluations
    steps: int
    seconds: float
    device: str
    trainable_parameters: int
    train_pairs: int
    heldout_pairs: int


class Balance(BaseModel):
    """The teacher's labels of the pairs before and after balancing (training/kda/data.py)."""

    model_config = ConfigDict(extra="forbid")
    mode: str | int | float | dict[str, int]
    before: dict[str, int]
    after: dict[str, int]


class KDAReport(FitReport):
    teacher: str
    teacher_kind: str
    target: str
    variant: str
    feature_weight: float
    labels: list[str]
    balance: Balance
    pairs: int
    bundle: str | None = None  # the exported bundle's directory


class VocabularyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pieces_before: int
    pieces: int
    heldout_before: dict[str, float]  # `<unk>` share and tokens per text, held-out slice
    heldout_after: dict[str, float]


class PriorShift(BaseModel):
    """The prior correction baked into the exported logits."""

    model_config = ConfigDict(extra="forbid")
    trained_under: list[float]
    em_estimate: list[float]
    em_iterations: int
    target: list[float]
    logit_shift: list[float]


class AdaptReport(RunReport):
    texts: int
    train: int  # unlabeled texts trained on
    pairs: int = 0  # training pairs of a KDA run mixed in (`pairs` in the config)
    heldout: int
    vocabulary: VocabularyChange
    history: list[dict[str, Any]]  # step 0 (before adapting), then the loop's evaluations
    best_heldout_loss: float
    steps: int
    seconds: float
    prior_trained_under: list[float]
    prior: PriorShift | None = None
