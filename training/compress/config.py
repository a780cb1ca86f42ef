"""Compression run configuration (YAML or JSON), validated on creation and saved with the run.

Defaults follow the paper scaled to e5-small: 12 -> 6 layers by stride, FFN 1536 -> 1024
(its 3072 -> 2048 ratio), hidden 384 -> 192, 40k pieces, task adapters with reduction factor
16 on the uncompressed model and 2 on the narrow students, AdamW 1e-4, batch 16, 20 epochs,
three seeds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.compress.distill import DistillSettings
from training.compress.head import HEAD_KINDS
from training.compress.surgery import HEAD_LAYOUTS, LAYER_INITS
from training.settings_files import plain, read_settings


@dataclass
class HeadConfig:
    kind: str = "adapter"
    reduction: int = 2  # the students'; the uncompressed baseline uses baseline_reduction
    baseline_reduction: int = 16
    learning_rate: float = 1e-4
    # a grid instead: each model's first seed is trained at every rate, the one with the best
    # dev macro-F1 is kept for it and its other seeds
    learning_rates: list[float] | None = None
    batch_size: int = 16
    epochs: int = 20
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    # the stages between the baseline and the final student may use the first few seeds only,
    # where compute is short (None: all of them)
    intermediate_seeds: int | None = None
    # stages between them that get no head at all (where compute is short)
    skip: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        kept = {"uncompressed", "vocab"} & set(self.skip)
        if kept:
            raise ValueError(f"head.skip cannot leave out {sorted(kept)}: the table needs them")

    def seeds_for(self, model: str) -> list[int]:
        final = model in ("uncompressed", "vocab")
        return (
            self.seeds
            if final or self.intermediate_seeds is None
            else self.seeds[: self.intermediate_seeds]
        )


@dataclass
class TaskConfig:
    data: Path  # a folder with train.tsv, dev.tsv, test.tsv
    text_column: str = "text"
    label_column: str = "category"
    labels: list[str] | None = None  # default: labels.txt in the folder, else sorted train labels

    def __post_init__(self) -> None:
        self.data = Path(self.data).expanduser()


@dataclass
class BundleConfig:
    name: str
    language: str
    version: str = "0.1.0"
    task: str = "classification"
    variants: list[str] = field(default_factory=lambda: ["fp32", "fp16", "int8"])
    min_variant_agreement: float = 0.99
    default: bool = True  # False: served for its language only when a request names it
    out: Path | None = None  # default: models/<name>
    sources: Path | None = None  # the committed sources; default: models/sources/<name>

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser() if self.out else Path("models") / self.name
        default = Path("models") / "sources" / self.name
        self.sources = Path(self.sources).expanduser() if self.sources else default


@dataclass
class CompressConfig:
    language: str
    teacher: str  # model directory, an import name (e5-small) or a hub name
    corpus: Path  # the language's text, a sentence a line
    task: TaskConfig
    out: Path
    bundle: BundleConfig | None = None
    max_length: int = 128
    val_fraction: float = 0.02
    max_texts: int | None = None  # cap on distillation texts (small machines)
    layers: int = 6
    layer_init: str = "stride"
    ffn: int = 1024
    importance_texts: int = 2000  # validation texts the FFN importance is accumulated over
    hidden: int = 192
    head_layout: str = "split"  # surgery.truncate_hidden: split (the paper's) or whole heads
    vocab_size: int = 40_000
    distill: DistillSettings = field(default_factory=DistillSettings)
    distill_truncated: DistillSettings | None = None  # default: same as distill
    # task-aware distillation from the fine-tuned uncompressed baseline (None: stage skipped)
    task_distill: DistillSettings | None = None
    task_texts: int | None = None  # its texts (default: the distillation texts)
    # another run of the same language whose layers and prune stages (and head runs) this one
    # reuses: the candidates of one language differ only from the truncation on
    base: Path | None = None
    head: HeadConfig = field(default_factory=HeadConfig)
    seed: int = 13
    threads: int = 0

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser()
        self.corpus = Path(self.corpus).expanduser()
        if os.path.isdir(os.path.expanduser(self.teacher)):
            self.teacher = os.path.expanduser(self.teacher)
        if isinstance(self.task, dict):
            self.task = TaskConfig(**self.task)
        if isinstance(self.distill, dict):
            self.distill = DistillSettings(**self.distill)
        if isinstance(self.distill_truncated, dict):
            self.distill_truncated = DistillSettings(**self.distill_truncated)
        if isinstance(self.task_distill, dict):
            self.task_distill = DistillSettings(**self.task_distill)
        if self.base is not None:
            self.base = Path(self.base).expanduser()
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)
        if self.bundle is None:
            self.bundle = BundleConfig(name=f"{self.language}-topic", language=self.language)
        elif isinstance(self.bundle, dict):
            self.bundle = BundleConfig(**{"language": self.language, **self.bundle})
        problems = {
            "layers": self.layers >= 1,
            "layer_init": self.layer_init in LAYER_INITS,
            "ffn": self.ffn >= 1,
            "hidden": self.hidden >= 1,
            "head_layout": self.head_layout in HEAD_LAYOUTS,
            "vocab_size": self.vocab_size >= 1,
            "val_fraction": 0 < self.val_fraction < 0.5,
            "max_length": self.max_length >= 4,
            "task_texts": self.task_texts is None or self.task_texts >= 1,
            "head": self.head.kind in HEAD_KINDS and len(self.head.seeds) >= 1,
        }
        for name, ok in problems.items():
            if not ok:
                raise ValueError(f"invalid compression setting {name}={getattr(self, name)!r}")

    @property
    def second_distill(self) -> DistillSettings:
        return self.distill_truncated or self.distill

    @classmethod
    def from_file(cls, path: Path) -> CompressConfig:
        return cls(**read_settings(path))

    def to_json(self) -> dict[str, Any]:
        return plain(self)
