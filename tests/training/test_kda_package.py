"""Committed KDA sources: pack a trained run, rebuild the same student and bundle from them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from app.bundle import load_bundle
from tests.training.test_kda import bert_teacher
from tests.training.unigram import tiny_model
from training.batches import pad_rows
from training.cli import main
from training.demo import build_char_tokenizer
from training.export.rebuild import predict
from training.kda.package import WEIGHTS, rebuild_student
from training.sources import SOURCE, CompressedSources, read_sources
from training.vocab.trim import trim_model

WORDS = ["xin", "chào", "bạn", "hello", "world"]


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    tiny_model(root / "base")
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, size=rng.integers(1, 5))) for _ in range(200)]
    trim_model(root / "base", root / "target", sentences, sentences[:10], size=6)
    tokenizer = build_char_tokenizer(max_length=32)
    teacher = bert_teacher(vocab=len(tokenizer))
    teacher.save_pretrained(str(root / "teacher"))
    tokenizer.save_pretrained(str(root / "teacher"))
    with (root / "pairs.tsv").open("w", encoding="utf-8") as handle:
        handle.write("en\tvi\n")
        for i, sentence in enumerate(sentences):
            handle.write(f"{sentence} {i}\t{sentence}\n")
    config = {
        "teacher": str(root / "teacher"),
        "target": str(root / "target"),
        "parallel": [{"path": str(root / "pairs.tsv")}],
        "out": str(root / "run"),
        "batch_size": 32,
        "epochs": 1,
        "max_length": 32,
        "balance": "none",
        "threads": 1,
        "bundle": {"name": "vi-toy", "out": str(root / "models" / "vi-toy"), "variants": ["fp32"]},
    }
    (root / "kda.yaml").write_text(yaml.safe_dump(config))
    assert main(["kda", "run", str(root / "kda.yaml"), "--no-export"]) == 0
    (root / "ref.txt").write_text("\n".join(sentences[:40]), encoding="utf-8")
    args = ["kda", "pack", str(root / "run"), "--out", str(root / "src"), "--base"]
    args += [str(root / "base"), "--reference", str(root / "ref.txt")]
    assert main(args) == 0
    assert main(["build", str(root / "src"), "--record"]) == 0
    return root


def test_sources_are_compact_and_without_the_teachers_word_table(packed: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(packed / "src" / WEIGHTS))
    assert all(t.dtype == torch.float16 for t in tensors.values())
    assert not any("word_embeddings" in k for k in tensors)
    assert any(k.startswith("adapter.") for k in tensors)
    source = json.loads((packed / "src" / SOURCE).read_text())
    assert len(source["reference"]["labels"]) == 40
    assert source["provenance"]["method"] == "KDA (full adapter)"


def test_rebuilt_bundle_matches_the_rebuilt_student(packed: Path) -> None:
    student, tokenizer, _ = rebuild_student(packed / "src")
    bundle = load_bundle(packed / "models" / "vi-toy")
    assert bundle.manifest.language == "vi"
    texts = ["xin chào bạn", "hello world bạn", "chào"]
    ids = [list(x) for x in tokenizer(texts)["input_ids"]]
    x, mask = pad_rows(ids, [0, 1, 2], tokenizer.pad_token_id, torch.device("cpu"))
    session = ort.InferenceSession(str(packed / "models" / "vi-toy" / "model.onnx"))
    onnx_logits = session.run(None, {"input_ids": x.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        torch_logits = student(x, mask).logits.numpy()
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    # the rebuilt tokenizer is the trimmed one the student was trained with
    trained = json.loads((packed / "target" / "tokenizer.json").read_text())["model"]["vocab"]
    rebuilt = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    assert rebuilt == trained


def test_rebuild_reproduces_the_recorded_predictions(packed: Path) -> None:
    assert main(["build", str(packed / "src"), "--out", str(packed / "again")]) == 0
    source = json.loads((packed / "src" / SOURCE).read_text())
    student, tokenizer, _ = rebuild_student(packed / "src")
    assert (
        predict(student, tokenizer, source["reference"]["texts"]) == source["reference"]["labels"]
    )


def test_if_changed_skips_a_current_bundle(
    packed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(packed / "models" / "vi-toy")
    capsys.readouterr()
    assert main(["build", str(packed / "src"), "--out", out, "--if-changed"]) == 0
    assert "is current" in capsys.readouterr().out
    copy = packed / "src-copy"
    shutil.copytree(packed / "src", copy)
    source = json.loads((copy / SOURCE).read_text())
    (copy / SOURCE).write_text(json.dumps(source | {"evaluation": [{"dataset": "x"}]}))
    assert main(["build", str(copy), "--out", out, "--if-changed"]) == 0
    assert "building" in capsys.readouterr().out
    assert load_bundle(packed / "models" / "vi-toy").manifest.raw["evaluation"] == [
        {"dataset": "x"}
    ]


def test_checking_a_current_bundle_loads_neither_torch_nor_transformers(packed: Path) -> None:
    # `make serve` checks every bundle this way before it starts: seconds, not minutes
    args = ["build", str(packed / "src"), "--out", str(packed / "models" / "vi-toy")]
    assert main([*args, "--if-changed"]) == 0  # current with these sources, whatever ran before
    check = (
        "import sys; from training.cli import main; "
        f"code = main({[*args, '--if-changed']!r}); "
        "print(code, sorted(m for m in ('torch', 'transformers', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 []"


def test_changed_sources_are_refused(packed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = json.loads((packed / "src" / SOURCE).read_text())
    tampered = packed / "tampered"
    tampered.mkdir(exist_ok=True)
    for name in (WEIGHTS, "teacher-config.json", "kept-pieces.json"):
        (tampered / name).write_bytes((packed / "src" / name).read_bytes())
    flipped = {"negative": "positive", "positive": "neutral", "neutral": "negative"}
    wrong = dict(source, reference=dict(source["reference"]))
    wrong["reference"]["labels"] = [flipped[x] for x in source["reference"]["labels"]]
    (tampered / SOURCE).write_text(json.dumps(wrong))
    assert main(["build", str(tampered), "--out", str(packed / "bad")]) == 2
    assert "changes 40 of 40 reference predictions" in capsys.readouterr().err
    assert not (packed / "bad").exists()
    (tampered / SOURCE).write_text(json.dumps(dict(source, base_tokenizer_sha256="0" * 64)))
    assert main(["build", str(tampered), "--out", str(packed / "bad")]) == 2
    assert "another tokenizer" in capsys.readouterr().err


def test_sources_are_checked_when_read(packed: Path, tmp_path: Path) -> None:
    source = json.loads((packed / "src" / SOURCE).read_text())
    (tmp_path / SOURCE).write_text(json.dumps(source | {"heads": "eight", "colour": "red"}))
    with pytest.raises(ValueError, match=r"source.json: kda.heads: .*; kda.colour: Extra inputs"):
        read_sources(tmp_path)
    with pytest.raises(ValueError, match=r"source.json describes a 'kda' model"):
        read_sources(packed / "src", CompressedSources)
    assert main(["build", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def test_teacher_is_restored_from_the_sources(packed: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "teacher"
    args = ["kda", "teacher", str(packed / "src"), "--out", str(out)]
    assert main([*args, "--english", str(packed / "teacher")]) == 0
    original = AutoModelForSequenceClassification.from_pretrained(str(packed / "teacher")).eval()
    restored = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    ids = torch.randint(0, original.config.vocab_size, (4, 12))
    with torch.no_grad():
        expected, got = original(input_ids=ids).logits, restored(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=2e-2)  # fp16 sources
    assert (out / "tokenizer.json").is_file()


def test_teacher_restore_refuses_a_word_table_that_does_not_fit(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["kda", "teacher", str(packed / "src"), "--out", str(tmp_path / "t")]
    assert main([*args, "--english", str(packed / "base")]) == 2
    assert "does not fit the teacher" in capsys.readouterr().err
    assert main([*args, "--english", str(tmp_path)]) == 2
    assert "model.safetensors is missing" in capsys.readouterr().err
