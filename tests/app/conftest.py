from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.bundles import copy_bundle, edit_manifest


@pytest.fixture(scope="module")
def models_dir(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The good bundles plus one whose manifest promises more labels than the model has."""
    root = tmp_path_factory.mktemp("models")
    for path in built.values():
        shutil.copytree(path, root / path.name)
    broken = copy_bundle(built["sw-topic"], root, "mt-broken")
    edit_manifest(broken, lambda m: m.update(language="mt", labels=["x", "y"]))
    return root


def make_client(models_dir: Path, **overrides: object) -> TestClient:
    settings = Settings(models_dir=models_dir, **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(models_dir: Path) -> Iterator[TestClient]:
    with make_client(
        models_dir, max_texts_per_request=8, max_chars_per_text=300, max_body_bytes=4096
    ) as test_client:
        yield test_client
