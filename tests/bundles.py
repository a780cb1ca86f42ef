"""Tiny real bundles for tests: a random BERT and a character tokenizer, exported for real,
plus helpers that break a copy of a good bundle in one specific way."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from training.demo import SAMPLE_TEXTS, build_char_tokenizer, tiny_classifier
from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec


def build_bundle(
    out: Path,
    name: str,
    task: str,
    language: str,
    labels: list[str],
    max_length: int = 32,
    variants: tuple[str, ...] = ("fp32",),
    seed: int = 0,
    hidden: int = 32,
    layers: int = 1,
    label_scheme: str | None = None,
    default: bool = True,
) -> Path:
    tokenizer = build_char_tokenizer(["tốt", "không", "rất"], max_length)
    token_level = task == "token-classification"
    model = tiny_classifier(
        len(tokenizer), len(labels), max_length, seed, hidden=hidden, layers=layers,
        token_level=token_level,
    )  # fmt: skip
    spec = BundleSpec(
        name=name,
        version="1.2.3",
        task=task,
        language=language,
        labels=labels,
        max_length=max_length,
        variants=variants,
        description=f"test bundle {name}",
        label_scheme=label_scheme,
        default=default,
        evaluation=[{"dataset": "unit", "accuracy": 0.5, "macro_f1": 0.4, "n": 10}],
    )
    export = ExportSpec(min_variant_agreement=0.0, lengths=(4, 16))
    write_bundle(model, tokenizer, spec, out / name, SAMPLE_TEXTS, export)
    return out / name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_bundle(source: Path, target_root: Path, name: str) -> Path:
    """A copy of `source` renamed `name` (manifest name and checksums kept consistent)."""
    target = target_root / name
    shutil.copytree(source, target)
    edit_manifest(target, lambda m: m.update(name=name))
    return target


def edit_manifest(bundle: Path, change: Any, rehash: bool = True) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if rehash:
        for rel in list(manifest.get("files", {})):
            if (bundle / rel).is_file():
                manifest["files"][rel] = sha256(bundle / rel)
    path.write_text(json.dumps(manifest, indent=2))
