"""Export to a bundle: parity over the grid, variants, manifest, atomic write, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from app.bundle import load_bundle, manifest_schema
from training.cli import main
from training.demo import SAMPLE_TEXTS, build_char_tokenizer, tiny_classifier
from training.export.bundle import BundleSpec, check_manifest, write_bundle
from training.export.onnx import ExportSpec, export_onnx
from training.export.parity import ParityError, check_parity, grid_batches

# a 3-label toy bundle with an int8 variant
TOY_SPEC = BundleSpec(
    name="x",
    version="1",
    task="sentiment",
    language="vi",
    labels=["a", "b", "c"],
    max_length=32,
    variants=("fp32", "int8"),
)


def test_manifest_follows_the_schema_and_lists_every_file(built: dict[str, Path]) -> None:
    path = built["vi-sentiment"]
    manifest = json.loads((path / "manifest.json").read_text())
    jsonschema.validate(manifest, manifest_schema())
    on_disk = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    assert set(manifest["parity"]) == {"fp32", "fp16", "int8"}
    assert manifest["parity"]["fp32"]["max_abs_diff"] < 1e-4
    assert manifest["parity"]["fp32"]["label_agreement"] == 1.0
    assert manifest["parity"]["fp32"]["cases"] == 6  # 3 batch sizes x 2 lengths
    assert load_bundle(path).manifest.inputs == ("input_ids", "attention_mask")
    check_manifest(manifest)  # what the writer checks before it writes
    with pytest.raises(ValueError, match="the manifest does not match the schema at task"):
        check_manifest(manifest | {"task": "poetry"})
    with pytest.raises(ValueError, match="at \\(top level\\): 'labels' is a required"):
        check_manifest({k: v for k, v in manifest.items() if k != "labels"})


def test_parity_reports_every_mismatch(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    other = tiny_classifier(len(tokenizer), 3, 32, seed=1, hidden=32, layers=1)
    spec = ExportSpec(batch_sizes=(1, 2), lengths=(4, 8))
    export_onnx(other, tmp_path / "other.onnx", spec, vocab_size=len(tokenizer))
    sequences = [tokenizer(t)["input_ids"] for t in SAMPLE_TEXTS]
    with pytest.raises(ParityError) as info:
        check_parity(model, {"fp32": tmp_path / "other.onnx"}, sequences, spec, pad_id=0)
    message = str(info.value)
    assert message.startswith("4 parity failures")
    for case in (
        "batch=1 length<=4",
        "batch=1 length<=8",
        "batch=2 length<=4",
        "batch=2 length<=8",
    ):
        assert case in message


def test_labels_are_compared_on_every_text_at_its_full_length(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    other = tiny_classifier(len(tokenizer), 3, 32, seed=1, hidden=32, layers=1)
    spec = ExportSpec(batch_sizes=(1, 2), lengths=(4, 24), atol=10.0, min_variant_agreement=1.0)
    for name, source in (("same", model), ("other", other)):
        export_onnx(source, tmp_path / f"{name}.onnx", spec, vocab_size=len(tokenizer))
    sequences = [tokenizer(t)["input_ids"] for t in SAMPLE_TEXTS]
    reports = check_parity(model, {"fp32": tmp_path / "same.onnx"}, sequences, spec, pad_id=0)
    assert reports["fp32"].texts == len(sequences)  # each once, not once per grid case
    assert reports["fp32"].cases == 4
    assert reports["fp32"].label_agreement == 1.0
    with pytest.raises(ParityError, match="int8: label agreement"):
        check_parity(model, {"int8": tmp_path / "other.onnx"}, sequences, spec, pad_id=0)


def test_export_traces_eager_attention_and_gives_the_model_its_setting_back(
    tmp_path: Path,
) -> None:
    import onnx
    import onnxruntime as ort
    import torch

    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    model.set_attn_implementation("sdpa")
    spec = ExportSpec()
    paths = {name: tmp_path / f"{name}.onnx" for name in ("eager", "sdpa")}
    export_onnx(model, paths["eager"], spec, vocab_size=len(tokenizer))
    assert model.config._attn_implementation == "sdpa"
    torch.onnx.export(  # what the exporter would record without the switch
        model,
        (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long)),
        str(paths["sdpa"]),
        input_names=list(spec.input_names),
        dynamic_axes=spec.dynamic_axes,
        opset_version=spec.opset,
        dynamo=False,
    )
    nodes = {name: len(onnx.load(str(path)).graph.node) for name, path in paths.items()}
    assert nodes["eager"] < nodes["sdpa"]
    ids = torch.tensor([tokenizer("xin chao")["input_ids"]])
    feed = {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy()}
    session = ort.InferenceSession(str(paths["eager"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.numpy()
    assert abs(session.run(None, feed)[0] - expected).max() < 1e-5


def test_failed_export_leaves_no_bundle(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    strict = ExportSpec(min_variant_agreement=1.0, atol=0.0, lengths=(4,), batch_sizes=(1,))
    with pytest.raises(ParityError):
        write_bundle(model, tokenizer, TOY_SPEC, tmp_path / "x", SAMPLE_TEXTS, strict)
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


def test_grid_batches_pad_real_sequences() -> None:
    spec = ExportSpec(batch_sizes=(2,), lengths=(3,))
    ((name, ids, mask),) = grid_batches([[1, 2, 3, 4], [5]], spec, pad_id=0)
    assert name == "batch=2 length<=3"
    assert ids.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": ("int8",)}, "every bundle needs the fp32 variant"),
        ({"variants": ("fp32", "bf16")}, "unknown variants ['bf16']"),
        ({"labels": ["a", "a"]}, "labels must be at least two distinct names"),
    ],
)
def test_bundle_spec_names_bad_values(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "name": "x",
        "version": "1",
        "task": "sentiment",
        "language": "vi",
        "labels": ["a", "b"],
        "max_length": 8,
    }
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BundleSpec(**{**base, **kwargs})  # type: ignore[arg-type]


def test_export_spec_names_bad_values() -> None:
    with pytest.raises(ValueError, match="must start with input_ids"):
        ExportSpec(input_names=("attention_mask",))
    with pytest.raises(ValueError, match="opset 3"):
        ExportSpec(opset=3)


def test_demo_bundle_cli_builds_a_loadable_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo-bundle", "--out", str(out), "--variants", "fp32"]) == 0
    summary = json.loads(capsys.readouterr().out.split("...\n", 1)[1])
    assert summary["name"] == "vi-sentiment-demo"
    manifest = load_bundle(out).manifest
    assert manifest.demo is True
    assert "UNTRAINED DEMO" in (manifest.description or "")
    assert manifest.labels == ("negative", "neutral", "positive")


def test_cli_reports_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo-bundle", "--out", str(tmp_path / "d"), "--labels", "only"])
    assert code == 2
    assert "labels must be at least two distinct names" in capsys.readouterr().err


def test_variants_leave_nothing_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime's converters may drop temporaries into the working directory; the variants
    run in a scratch directory of their own, and relative paths still mean the caller's."""
    from training.export.variants import to_fp16, to_int8

    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    export_onnx(model, Path("model.onnx"), ExportSpec(), vocab_size=len(tokenizer))
    to_fp16(Path("model.onnx"), Path("model.fp16.onnx"))
    to_int8(Path("model.onnx"), Path("model.int8.onnx"))
    assert Path.cwd() == work
    assert sorted(p.name for p in work.iterdir()) == [
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.onnx",
    ]


def test_int8_keeps_the_named_matmuls_in_fp32(tmp_path: Path) -> None:
    import onnx

    from training.export.variants import to_int8

    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    export_onnx(model, tmp_path / "model.onnx", ExportSpec(), vocab_size=len(tokenizer))

    def float_matmuls(keep: tuple[str, ...]) -> list[str]:
        to_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx", keep_fp32=keep)
        graph = onnx.load(str(tmp_path / "model.int8.onnx")).graph
        weights = {init.name for init in graph.initializer}
        return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]

    assert float_matmuls(()) == []  # every weight MatMul quantized
    kept = float_matmuls(("/intermediate/", "/output/dense/"))
    assert sorted(kept) == [
        "/model/bert/encoder/layer.0/attention/output/dense/MatMul",
        "/model/bert/encoder/layer.0/intermediate/dense/MatMul",
        "/model/bert/encoder/layer.0/output/dense/MatMul",
    ]


def test_int8_below_its_gate_is_quantized_again_with_the_adapters_in_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first int8 graph disagrees with the model (it is another model's); the second,
    made with `keep_fp32`, is the real quantization and passes: the bundle is written and its
    manifest says what stayed fp32. When the second fails too, nothing is written."""
    import training.export.bundle as bundle_module
    from training.export.variants import to_int8

    tokenizer = build_char_tokenizer()
    model = tiny_classifier(len(tokenizer), 3, 32, seed=0, hidden=32, layers=1)
    other = tiny_classifier(len(tokenizer), 3, 32, seed=1, hidden=32, layers=1)
    export_onnx(other, tmp_path / "other.onnx", ExportSpec(), vocab_size=len(tokenizer))
    calls: list[tuple[str, ...]] = []

    def int8_of_another_model_first(
        source: Path, target: Path, keep_fp32: tuple[str, ...] = ()
    ) -> None:
        calls.append(tuple(keep_fp32))
        if keep_fp32:
            to_int8(source, target, keep_fp32)
        else:
            target.write_bytes((tmp_path / "other.onnx").read_bytes())

    monkeypatch.setattr(bundle_module, "to_int8", int8_of_another_model_first)
    gate = ExportSpec(min_variant_agreement=0.9)
    manifest = write_bundle(model, tokenizer, TOY_SPEC, tmp_path / "x", SAMPLE_TEXTS, gate)
    assert calls == [(), bundle_module.INT8_KEEP_FP32]
    assert manifest["parity"]["int8"]["kept_fp32"] == list(bundle_module.INT8_KEEP_FP32)
    assert manifest["parity"]["int8"]["label_agreement"] >= 0.9
    assert "kept_fp32" not in manifest["parity"]["fp32"]
    assert load_bundle(tmp_path / "x").manifest.variants["int8"] == "model.int8.onnx"

    monkeypatch.setattr(
        bundle_module,
        "to_int8",
        lambda source, target, keep_fp32=(): target.write_bytes(
            (tmp_path / "other.onnx").read_bytes()
        ),
    )
    with pytest.raises(ParityError, match="int8: label agreement"):
        write_bundle(model, tokenizer, TOY_SPEC, tmp_path / "y", SAMPLE_TEXTS, gate)
    assert not (tmp_path / "y").exists()
