"""Model references: a local directory, a name this project imports (`minilm`, `e5-small`,
imported on first use into the cache), or anything else, passed on to Hugging Face as a hub
name for users who have the internet."""

from __future__ import annotations

from pathlib import Path

IMPORTABLE = ("minilm", "e5-small")


def resolve_model(reference: str) -> str:
    path = Path(reference)
    if path.is_dir():
        return str(path)
    if reference in IMPORTABLE:
        from training.weights.sources import default_import_dir

        target = default_import_dir(reference)
        if reference == "minilm":
            from training.weights.minilm import import_minilm

            import_minilm(target)
        else:
            from training.weights.e5 import import_e5

            import_e5(target)
        return str(target)
    return reference
