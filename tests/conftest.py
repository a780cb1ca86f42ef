from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundles import build_bundle


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good bundles, built once: vi sentiment (fp32 + int8 + fp16) and two sw classifiers."""
    root = tmp_path_factory.mktemp("built")
    return {
        "vi-sentiment": build_bundle(
            root,
            "vi-sentiment",
            "sentiment",
            "vi",
            ["negative", "neutral", "positive"],
            variants=("fp32", "fp16", "int8"),
        ),
        "sw-topic": build_bundle(
            root,
            "sw-topic",
            "classification",
            "sw",
            ["health", "politics", "science", "sports"],
            seed=1,
        ),
        "sw-topic-b": build_bundle(
            root,
            "sw-topic-b",
            "classification",
            "swh",
            ["a", "b"],
            seed=2,
        ),
    }
