"""Reading run configurations (YAML or JSON mappings) and writing them back as plain JSON,
shared by the fine-tune, KDA and compression configs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


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


def plain(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready values (paths as strings, nested ones too)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    result: dict[str, Any] = convert(asdict(config))
    return result


def validated(model: type[ModelT], data: dict[str, Any], source: Path) -> ModelT:
    """`data` as a `model` (pydantic), or a ValueError naming the file and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"{source}: {problems}") from None
