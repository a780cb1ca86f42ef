"""Reading a model bundle (`models/<name>/`) and checking it against its contract.

A bundle is trusted only after its manifest matches the JSON schema and every file it lists
matches its sha256: a half-copied or edited bundle is refused, with the bundle and the problem
named, before any of it reaches onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from app.errors import BundleError

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


@lru_cache
def manifest_schema() -> dict[str, Any]:
    text = resources.files("app").joinpath("manifest.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """The parts of `manifest.json` the service acts on; `raw` keeps the rest for /v1/models."""

    name: str
    version: str
    task: str
    language: str
    labels: tuple[str, ...]
    max_length: int
    inputs: tuple[str, ...]
    output: str
    variants: dict[str, str]
    tokenizer: str
    demo: bool = False
    default: bool = True  # False: served for its language only when a request names it
    label_scheme: str | None = None  # token classification: "tags" or "iob2"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def evaluation(self) -> list[dict[str, Any]]:
        return list(self.raw.get("evaluation", []))

    @property
    def description(self) -> str | None:
        return self.raw.get("description")


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    def variant_path(self, variant: str) -> Path:
        return self.path / self.manifest.variants[variant]

    @property
    def tokenizer_file(self) -> Path:
        return self.path / self.manifest.tokenizer / "tokenizer.json"


def _read_manifest(path: Path) -> dict[str, Any]:
    label = path.name
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(label, f"no {MANIFEST} in {path}")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(label, f"{MANIFEST} is not valid JSON: {exc}") from exc
    errors = sorted(
        jsonschema.Draft202012Validator(manifest_schema()).iter_errors(data),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise BundleError(
            label, f"{MANIFEST} does not match the schema at {where}: {errors[0].message}"
        )
    return dict(data)


def _check_files(path: Path, name: str, data: dict[str, Any]) -> None:
    listed: dict[str, str] = data["files"]
    root = path.resolve()
    for rel, expected in listed.items():
        target = (path / rel).resolve()
        if not target.is_relative_to(root):
            raise BundleError(name, f"file {rel!r} points outside the bundle")
        if not target.is_file():
            raise BundleError(name, f"file {rel!r} is listed in the manifest but missing")
        actual = sha256_file(target)
        if actual != expected:
            raise BundleError(
                name,
                f"checksum mismatch for {rel!r}: expected {expected[:12]}…, got {actual[:12]}…",
            )
    required = [*data["variants"].values(), f"{data['tokenizer']}/tokenizer.json"]
    for rel in required:
        if rel not in listed:
            raise BundleError(name, f"{rel!r} is used by the manifest but has no checksum")


def _check_labels(name: str, data: dict[str, Any]) -> None:
    """IOB2 labels are O, B-TYPE and I-TYPE, and every I-TYPE has its B-TYPE."""
    if data.get("label_scheme") != "iob2":
        return
    labels = list(data["labels"])
    wrong = [x for x in labels if x != "O" and not x.startswith(("B-", "I-"))]
    if wrong or "O" not in labels:
        raise BundleError(name, f"iob2 labels must be O, B-TYPE or I-TYPE; got {wrong or labels}")
    orphans = [x for x in labels if x.startswith("I-") and f"B-{x[2:]}" not in labels]
    if orphans:
        raise BundleError(name, f"iob2 labels {orphans} have no B- label of their type")


def load_bundle(path: Path) -> Bundle:
    """Validate a bundle directory and return it; raises `BundleError` naming the problem."""
    data = _read_manifest(path)
    name = data["name"]
    _check_files(path, name, data)
    _check_labels(name, data)
    manifest = Manifest(
        name=name,
        version=data["version"],
        task=data["task"],
        language=data["language"],
        labels=tuple(data["labels"]),
        max_length=data["max_length"],
        inputs=tuple(data["inputs"]),
        output=data["output"],
        variants=dict(data["variants"]),
        tokenizer=data["tokenizer"],
        demo=bool(data.get("demo", False)),
        default=bool(data.get("default", True)),
        label_scheme=data.get("label_scheme"),
        raw=data,
    )
    return Bundle(path=path, manifest=manifest)


def discover(models_dir: Path, names: list[str]) -> list[Path]:
    """Bundle directories to load: the named ones, or every directory with a manifest."""
    if names:
        return [models_dir / name for name in names]
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if (p / MANIFEST).is_file())
