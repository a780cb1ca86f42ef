"""The bundle contract: every way a bundle can be broken is refused with bundle + problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from app.bundle import discover, load_bundle, manifest_schema
from app.errors import BundleError
from app.model import ServedModel
from app.settings import Settings
from tests.bundles import copy_bundle, edit_manifest


def test_good_bundle_loads_and_matches_schema(built: dict[str, Path]) -> None:
    bundle = load_bundle(built["vi-sentiment"])
    manifest = json.loads((built["vi-sentiment"] / "manifest.json").read_text())
    jsonschema.validate(manifest, manifest_schema())
    assert bundle.name == "vi-sentiment"
    assert bundle.manifest.labels == ("negative", "neutral", "positive")
    assert set(bundle.manifest.variants) == {"fp32", "fp16", "int8"}
    assert bundle.tokenizer_file.is_file()


def _truncate_onnx(bundle: Path) -> None:
    for model in bundle.glob("*.onnx"):
        model.write_bytes(model.read_bytes()[:2000])
    edit_manifest(bundle, lambda m: None)  # checksums now agree: onnxruntime must catch it


def _corrupt_without_rehash(bundle: Path) -> None:
    (bundle / "model.onnx").write_bytes(b"\0" * 100)


def _schema_error(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(task="translation"))


def _missing_labels(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.pop("labels"))


def _labels_mismatch(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(labels=["a", "b", "c", "d", "e"]))


def _missing_tokenizer(bundle: Path) -> None:
    (bundle / "tokenizer" / "tokenizer.json").unlink()


def _broken_tokenizer(bundle: Path) -> None:
    (bundle / "tokenizer" / "tokenizer.json").write_text("{not json")
    edit_manifest(bundle, lambda m: None)


def _wrong_input(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m.update(inputs=["input_ids", "token_type_ids"]))


def _invalid_json(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{")


def _escaping_path(bundle: Path) -> None:
    edit_manifest(bundle, lambda m: m["files"].update({"../x": "0" * 64}), rehash=False)


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "checksum": (_corrupt_without_rehash, "checksum mismatch for 'model.onnx'"),
    "truncated-onnx": (_truncate_onnx, "cannot be loaded by onnxruntime"),
    "schema": (_schema_error, "does not match the schema at task"),
    "no-labels": (_missing_labels, "'labels' is a required property"),
    "labels-logits": (_labels_mismatch, "lists 5 labels but the model returns logits of shape"),
    "no-tokenizer": (
        _missing_tokenizer,
        "'tokenizer/tokenizer.json' is listed in the manifest but missing",
    ),
    "bad-tokenizer": (_broken_tokenizer, "tokenizer tokenizer.json cannot be loaded"),
    "wrong-input": (_wrong_input, "input 'token_type_ids' is not an input of the graph"),
    "invalid-json": (_invalid_json, "manifest.json is not valid JSON"),
    "escaping-path": (_escaping_path, "file '../x' points outside the bundle"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_bundle_is_refused_with_name_and_problem(
    kind: str, built: dict[str, Path], tmp_path: Path
) -> None:
    breaker, problem = BROKEN[kind]
    bundle = copy_bundle(built["vi-sentiment"], tmp_path, f"broken-{kind}")
    breaker(bundle)
    served = ServedModel.load(bundle, Settings(models_dir=tmp_path))
    assert served.status == "failed"
    assert served.error is not None
    assert f"broken-{kind}" in served.error
    assert problem in served.error


def test_missing_directory_is_a_failed_model(tmp_path: Path) -> None:
    served = ServedModel.load(tmp_path / "nope", Settings(models_dir=tmp_path))
    assert served.status == "failed"
    assert "does not exist" in (served.error or "")


def test_bundle_error_names_bundle() -> None:
    err = BundleError("x", "broken")
    assert str(err) == "bundle 'x': broken"


def test_discover_finds_bundles_or_uses_names(built: dict[str, Path]) -> None:
    root = built["vi-sentiment"].parent
    assert [p.name for p in discover(root, [])] == ["sw-topic", "sw-topic-b", "vi-sentiment"]
    assert discover(root, ["sw-topic"]) == [root / "sw-topic"]
    assert discover(root / "missing", []) == []
