"""Run configurations: YAML or JSON files read into pydantic models (unknown keys refused,
values validated once, after the command line's overrides, errors naming the file and the
field), and the parts several methods' configurations share."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

ModelT = TypeVar("ModelT", bound=BaseModel)

# the constrained values every method's settings use
UserPath = Annotated[Path, AfterValidator(lambda p: p.expanduser())]
LearningRate = Annotated[float, Field(gt=0, lt=1)]
Count = Annotated[int, Field(ge=1)]  # epochs, batch sizes, steps
Threads = Annotated[int, Field(ge=0)]  # 0: torch's default
Share = Annotated[float, Field(ge=0, le=1)]


def read_settings(path: Path) -> dict[str, Any]:
    """The mapping in a `.json` file, or in a YAML file (any other suffix)."""
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a mapping of settings")
    return data


def validated(model: type[ModelT], data: dict[str, Any], source: Path | str) -> ModelT:
    """`data` as a `model` (pydantic), or a ValueError naming the source and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from None


def _merged(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`data` with each override that is not None in place (dotted keys reach nested ones)."""
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, last = key.split(".")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return data


class Settings(BaseModel):
    """A configuration: unknown keys are refused; read from a file with the command line's
    overrides merged in before the one validation."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> Self:
        """The file's settings, each override that is not None replacing its key (a dotted
        key, e.g. `bundle.out`, replaces a nested one)."""
        return validated(cls, _merged(read_settings(path), overrides), path)

    @classmethod
    def from_command(cls, args: argparse.Namespace) -> Self:
        """What a command was given: its `config` file, if it takes one, under every option
        whose destination is named like a field (dotted for a nested one) and was given."""
        fields = cls.model_fields
        overrides = {k: v for k, v in vars(args).items() if k.split(".")[0] in fields}
        config = getattr(args, "config", None)
        if config is not None:
            return cls.from_file(config, **overrides)
        return validated(cls, _merged({}, overrides), "the command line")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings), as saved beside a run."""
        dumped: dict[str, Any] = self.model_dump(mode="json")
        return dumped


class LabelledTable(Settings):
    """A labelled CSV/TSV file as a setting: its columns, and its labels mapped onto the
    model's (`{"0": "negative", "1": "positive"}`); `limit` keeps its first rows only."""

    path: UserPath
    text_column: str = "text"
    label_column: str = "label"
    label_map: dict[str, str] = Field(default_factory=dict)
    limit: Count | None = None


class BundleTarget(Settings):
    """The bundle a run exports: its manifest's identity and where it and its committed
    sources go (default `models/<name>` and `models/sources/<name>`)."""

    name: str
    language: str
    version: str = "0.1.0"
    task: str = "classification"
    variants: list[str] = Field(default_factory=lambda: ["fp32", "fp16", "int8"], min_length=1)
    # fp16 / int8 labels must agree with fp32 on this share of the parity texts
    min_variant_agreement: Share = 0.99
    default: bool = True  # False: served for its language only when a request names it
    out: UserPath | None = None
    sources: UserPath | None = None

    @model_validator(mode="after")
    def _paths(self) -> BundleTarget:
        self.out = self.out or Path("models") / self.name
        self.sources = self.sources or Path("models") / "sources" / self.name
        return self
