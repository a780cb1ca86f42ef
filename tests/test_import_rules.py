"""The architecture's import rules, checked on the source: the bundle is the only thing the
service and the training half share, and the training methods stand side by side (each on the
shared helpers), not stacked on each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# training methods and tools: none imports another (they share evaluate, export, vocab,
# weights and the top-level helpers instead)
METHODS = ("finetune", "kda", "compress", "probe", "ensemble")
# the label ensemble's members include linear probes: the one allowed edge between them
ALLOWED = {("ensemble", "probe")}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("half", "other"), [("app", "training"), ("training", "app")])
def test_the_service_and_the_training_half_never_import_each_other(half: str, other: str) -> None:
    offending = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources(half)
        for name in imported_modules(path)
        if name == other or name.startswith(f"{other}.")
    ]
    assert not offending, offending


def test_the_service_never_imports_torch() -> None:
    """The serving half runs on onnxruntime alone (its image has no torch)."""
    offending = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("app")
        for name in imported_modules(path)
        if name.split(".")[0] in ("torch", "transformers", "accelerate")
    ]
    assert not offending, offending


def test_training_methods_do_not_import_each_other() -> None:
    packages = sorted(
        p.name for p in (ROOT / "training").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    )
    assert set(METHODS) <= set(packages)
    offending = []
    for package in packages:
        if package == "recipes":  # scripts that drive the methods
            continue
        for path in sources(f"training/{package}"):
            for name in imported_modules(path):
                parts = name.split(".")
                if len(parts) < 2 or parts[0] != "training" or parts[1] not in packages:
                    continue
                target = parts[1]
                if target in METHODS and target != package and (package, target) not in ALLOWED:
                    offending.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offending, offending
