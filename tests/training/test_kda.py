"""KDA: adapter shapes and parameter counts, RoPE, frozen parts, a learnable toy language,
both teacher kinds, export parity, and the `kda run` pipeline end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
)

from app.bundle import load_bundle
from training.batches import pad_rows
from training.cli import main
from training.demo import build_char_tokenizer
from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec
from training.kda.adapter import VARIANTS, KDAAdapter, SelfAttentionBlock, svd_basis
from training.kda.config import KDAConfig, ParallelFile
from training.kda.data import balance, read_pairs
from training.kda.student import (
    KDAStudent,
    teacher_kind,
    teacher_logits,
    teacher_outputs,
)
from training.kda.train import FeatureTargets, FitSettings, fit

VOCAB, D = 40, 32


def bert_teacher(seed: int = 0, vocab: int = VOCAB) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config.num_labels = 3
    config.id2label = {0: "negative", 1: "neutral", 2: "positive"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = BertForSequenceClassification(config).eval()
    return calibrate(model, model.classifier, vocab)


def gpt2_teacher(seed: int = 0, vocab: int = VOCAB) -> GPT2ForSequenceClassification:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=D, n_layer=2, n_head=4, n_positions=64)
    config.num_labels = 3
    config.pad_token_id = 0
    model = GPT2ForSequenceClassification(config).eval()
    with torch.no_grad():  # trained GPT-2 token embeddings have std ~0.14, not the init's 0.02
        model.transformer.wte.weight.mul_(10)
    return calibrate(model, model.score, vocab)


def calibrate(model, head: torch.nn.Linear, vocab: int):  # type: ignore[no-untyped-def]
    """Set the random head so that labels vary across sentences and the teacher is fairly
    confident: standardise each class's score over random sentences, then sharpen."""
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _o: captured.append(args[0]))
    ids = torch.randint(1, vocab, (256, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        teacher_logits(model, teacher_kind(model), torch.ones_like(ids), input_ids=ids)
        hook.remove()
        features = captured[0]
        weight = torch.randn(3, features.shape[1], generator=torch.Generator().manual_seed(6))
        scores = features @ weight.T
        mean, std = scores.mean(0), scores.std(0)
        head.weight.copy_(weight / std[:, None] * 4)
        if head.bias is not None:
            head.bias.copy_(-mean / std * 4)
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_adapter_shapes_and_parameter_counts(variant: str) -> None:
    d_target, d = 24, 32
    adapter = KDAAdapter(d_target, d, torch.randn(16, d), variant, heads=8)
    out = adapter(torch.randn(3, 7, d_target), torch.ones(3, 7, dtype=torch.long))
    assert out.shape == (3, 7, d)
    linear = d_target * d + d
    attention = 4 * (d * d + d)
    block = attention + 2 * d + (d * d + d)  # + LayerNorm + one-layer FFN
    expected = {
        "linear": linear,
        "linear+self": linear + block,
        "linear+cross": linear + block,
        "full": linear + 2 * block,
    }
    assert adapter.trainable_parameters() == expected[variant]


def test_paper_sized_adapter_has_about_six_million_parameters() -> None:
    adapter = KDAAdapter(768, 768, torch.randn(768, 768), "full", heads=8)
    assert 6.3e6 < adapter.trainable_parameters() < 6.6e6


def test_rope_attention_depends_only_on_relative_position() -> None:
    block = SelfAttentionBlock(32, heads=8, ffn=32, dropout=0.0)
    x = torch.randn(2, 9, 32)
    base = block.scores(x, torch.arange(9))
    shifted = block.scores(x, torch.arange(9) + 57)
    torch.testing.assert_close(base, shifted, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(base, block.scores(x, torch.arange(9) * 2), atol=1e-3)


def test_svd_basis_spans_the_top_directions() -> None:
    table = torch.randn(100, 4) @ torch.randn(4, 16)  # rank 4
    basis = svd_basis(table, 8)
    assert basis.shape == (8, 16)
    assert torch.linalg.matrix_rank(basis, atol=1e-3) == 4


def test_unknown_variant_is_named() -> None:
    with pytest.raises(ValueError, match="unknown adapter variant 'mlp'"):
        KDAAdapter(8, 8, None, "mlp")


def toy_language(teacher: torch.nn.Module, n: int, seed: int) -> tuple[list, list, torch.Tensor]:
    """Source sentences, their target translations (a fixed token permutation), and a target
    embedding table = the teacher's embeddings rotated (plus noise) and permuted: only a
    working adapter can undo the rotation."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(VOCAB)
    source = [list(rng.integers(1, VOCAB, size=rng.integers(4, 12))) for _ in range(n)]
    target = [[int(perm[t]) for t in s] for s in source]
    teacher_table = teacher.get_input_embeddings().weight.detach()
    rotation, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1)))
    table = torch.zeros(VOCAB, D)
    noise = 0.05 * teacher_table.std() * torch.randn(VOCAB, D)
    table[torch.from_numpy(perm)] = teacher_table @ rotation + noise
    return source, target, table


def batch(sentences: list) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[type-arg]
    return pad_rows(sentences, list(range(len(sentences))), 0, torch.device("cpu"))


def teacher_probs(teacher: torch.nn.Module, kind: str, sentences: list) -> np.ndarray:
    ids, mask = batch(sentences)
    with torch.no_grad():
        return torch.softmax(teacher_logits(teacher, kind, mask, input_ids=ids), -1).numpy()


@pytest.mark.parametrize(
    ("variant", "make_teacher"),
    [("full", bert_teacher), ("linear", bert_teacher), ("full", gpt2_teacher)],
    ids=["full-bert", "linear-bert", "full-gpt2"],
)
def test_student_learns_the_toy_language(variant: str, make_teacher, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    teacher = make_teacher()
    kind = teacher_kind(teacher)
    source, target, table = toy_language(teacher, 1200, seed=0)
    probs = teacher_probs(teacher, kind, source)
    assert len(set(probs.argmax(1))) == 3  # the teacher uses every label
    before_teacher = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = KDAStudent(teacher, table, variant, heads=8, dropout=0.0)
    before_table = student.embeddings.weight.clone()
    settings = FitSettings(learning_rate=2e-3, batch_size=32, epochs=25, patience=25, seed=0)
    report = fit(
        student,
        target[:1000],
        probs[:1000],
        target[1000:],
        probs[1000:],
        settings,
        tmp_path,
        pad_id=0,
    )
    assert report.initial_heldout is not None
    assert report.heldout_agreement >= 0.9, report.history[-1]
    assert report.best_heldout_loss < 0.6 * report.initial_heldout["loss"]
    for name, value in teacher.state_dict().items():  # frozen parts did not move
        assert torch.equal(value, before_teacher[name]), name
    assert torch.equal(student.embeddings.weight, before_table)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(not p.requires_grad for p in student.embeddings.parameters())


def test_student_is_not_the_teacher_without_training() -> None:
    teacher = bert_teacher()
    source, target, table = toy_language(teacher, 300, seed=1)
    probs = teacher_probs(teacher, "encoder", source)
    student = KDAStudent(teacher, table, "full", heads=8, dropout=0.0).eval()
    student_probs = teacher_probs_from_student(student, target)
    assert (student_probs.argmax(1) == probs.argmax(1)).mean() < 0.8


def teacher_probs_from_student(student: KDAStudent, sentences: list) -> np.ndarray:
    ids, mask = batch(sentences)
    with torch.no_grad():
        return torch.softmax(student(ids, mask).logits, -1).numpy()


@pytest.mark.parametrize("make_teacher", [bert_teacher, gpt2_teacher], ids=["bert", "gpt2"])
def test_teacher_features_are_what_the_head_reads_without_padding(make_teacher) -> None:  # type: ignore[no-untyped-def]
    teacher = make_teacher()
    kind = teacher_kind(teacher)
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        logits, features = teacher_outputs(teacher, kind, mask, input_ids=ids)
        alone_logits, alone = teacher_outputs(
            teacher, kind, torch.ones(1, 3, dtype=torch.long), input_ids=ids[:1, :3]
        )
        hidden = teacher.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert features.shape == (2, 2 * D)
    torch.testing.assert_close(logits, teacher_logits(teacher, kind, mask, input_ids=ids))
    torch.testing.assert_close(logits[0], alone_logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features[0], alone[0], atol=1e-5, rtol=1e-5)
    read = hidden[:, 0] if kind == "encoder" else hidden[torch.tensor([0, 1]), torch.tensor([2, 4])]
    torch.testing.assert_close(features[:, :D], read)
    torch.testing.assert_close(features[1, D:], hidden[1].mean(0))
    torch.testing.assert_close(features[0, D:], hidden[0, :3].mean(0))


def test_feature_loss_trains_the_student_towards_the_teachers_features(tmp_path: Path) -> None:
    teacher = bert_teacher()
    source, target, table = toy_language(teacher, 1200, seed=0)
    ids, mask = batch(source)
    with torch.no_grad():
        logits, sentence = teacher_outputs(teacher, "encoder", mask, input_ids=ids)
    probs = torch.softmax(logits, -1).numpy()
    features = FeatureTargets.standardise(sentence[:1000].numpy(), sentence[1000:].numpy())
    student = KDAStudent(teacher, table, "full", heads=8, dropout=0.0)
    settings = FitSettings(learning_rate=2e-3, batch_size=32, epochs=8, patience=8, seed=0)
    pairs = (target[:1000], probs[:1000], target[1000:], probs[1000:])
    with pytest.raises(ValueError, match="needs the teacher's features"):
        fit(student, *pairs, FitSettings(feature_weight=1.0), tmp_path / "none", pad_id=0)
    settings.feature_weight = 1.0
    report = fit(student, *pairs, settings, tmp_path / "run", pad_id=0, features=features)
    last, initial = report.history[-1], report.initial_heldout
    assert initial is not None
    assert last["heldout_feature_loss"] < 0.5 * initial["feature_loss"]
    assert report.heldout_agreement >= 0.9, last
    assert last["heldout_loss"] < initial["loss"]  # the distillation part only


def test_decoder_pooling_ignores_right_padding() -> None:
    teacher = gpt2_teacher()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    padded = teacher_logits(teacher, "decoder", mask, input_ids=ids)
    alone = teacher_logits(
        teacher, "decoder", torch.ones(1, 3, dtype=torch.long), input_ids=ids[:1, :3]
    )
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)


def test_balance_smallest_and_counts() -> None:
    names = ["negative", "neutral", "positive"]
    labels = np.array([1] * 50 + [0] * 10 + [2] * 20)
    keep, report = balance(labels, names, "smallest", seed=0)
    assert report["before"] == {"negative": 10, "neutral": 50, "positive": 20}
    assert report["after"] == {"negative": 10, "neutral": 10, "positive": 10}
    assert len(set(keep.tolist())) == 30
    _, report = balance(labels, names, {"neutral": 15}, seed=0)
    assert report["after"] == {"negative": 10, "neutral": 15, "positive": 20}
    with pytest.raises(ValueError, match="not in"):
        balance(labels, names, {"mixed": 3}, seed=0)
    _, report = balance(np.array([0, 0, 1, 1, 1]), names, "smallest", seed=0)
    assert report["after"] == {"negative": 2, "neutral": 2, "positive": 0}
    with pytest.raises(ValueError, match="leaves 0 pairs"):
        balance(labels, names, {"negative": 0, "neutral": 0, "positive": 0}, seed=0)


def test_balance_ratio_bounds_the_skew() -> None:
    names = ["negative", "neutral", "positive"]
    labels = np.array([1] * 50 + [0] * 10 + [2] * 15)
    keep, report = balance(labels, names, 2.0, seed=0)
    assert report["after"] == {"negative": 10, "neutral": 20, "positive": 15}
    assert set(labels[keep].tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="balance ratio must be >= 1"):
        KDAConfig(teacher="t", target="x", parallel=[{"path": "p.tsv"}], out="o", balance=0.5)


def test_aligned_tables_are_joined_on_their_key(tmp_path: Path) -> None:
    (tmp_path / "en.tsv").write_text(
        "index_id\tcategory\ttext\n1\ta\tone\n2\tb\ttwo\n3\tc\tthree\n", encoding="utf-8"
    )
    (tmp_path / "vi.tsv").write_text(
        "index_id\tcategory\ttext\n3\tc\tba\n1\ta\tmột\n", encoding="utf-8"
    )
    spec = ParallelFile(
        path=tmp_path / "en.tsv",
        source_column="text",
        target_column="text",
        target_path=tmp_path / "vi.tsv",
    )
    pairs = read_pairs([spec])
    assert pairs.source == ["one", "three"]
    assert pairs.target == ["một", "ba"]


@pytest.mark.parametrize("make_teacher", [bert_teacher, gpt2_teacher], ids=["bert", "gpt2"])
def test_export_parity_for_both_teacher_kinds(make_teacher, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tokenizer = build_char_tokenizer(max_length=32)
    teacher = make_teacher(vocab=VOCAB)
    table = torch.randn(len(tokenizer), 24)
    student = KDAStudent(teacher, table, "full", heads=8).eval()
    spec = BundleSpec(
        name="kda-toy",
        version="0.1",
        task="sentiment",
        language="vi",
        labels=["negative", "neutral", "positive"],
        max_length=32,
        variants=("fp32", "int8"),
    )
    manifest = write_bundle(
        student,
        tokenizer,
        spec,
        tmp_path / "b",
        ["Sản phẩm rất tốt", "tệ quá", "bình thường thôi", "ok"],
        ExportSpec(min_variant_agreement=0.0, lengths=(4, 16)),
    )
    assert manifest["parity"]["fp32"]["max_abs_diff"] <= 1e-4
    assert manifest["parity"]["fp32"]["label_agreement"] == 1.0
    assert load_bundle(tmp_path / "b").manifest.labels == ("negative", "neutral", "positive")


def toy_run_config(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    """A saved tiny teacher and target, 240 toy pairs and a run configuration using them."""
    tokenizer = build_char_tokenizer(max_length=64)
    teacher = bert_teacher(vocab=len(tokenizer))
    teacher.save_pretrained(str(tmp_path / "teacher"))
    tokenizer.save_pretrained(str(tmp_path / "teacher"))
    torch.manual_seed(3)
    target = BertForSequenceClassification(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    )
    target.save_pretrained(str(tmp_path / "target"))
    tokenizer.save_pretrained(str(tmp_path / "target"))
    rng = np.random.default_rng(0)
    words = ["tốt", "xấu", "bình", "thường", "rất", "quá", "không", "ngon"]
    with (tmp_path / "pairs.tsv").open("w", encoding="utf-8") as handle:
        handle.write("id\ten\tvi\n")
        for i in range(240):
            sentence = " ".join(rng.choice(words, size=rng.integers(2, 6)))
            handle.write(f"{i}\t{sentence} en\t{sentence}\n")
    config = {
        "teacher": str(tmp_path / "teacher"),
        "target": str(tmp_path / "target"),
        "parallel": [
            {"path": str(tmp_path / "pairs.tsv"), "source_column": "en", "target_column": "vi"}
        ],
        "out": str(tmp_path / "run"),
        "variant": "full",
        "batch_size": 32,
        "epochs": 2,
        "max_length": 32,
        "heldout": 0.1,
        "balance": "smallest",
        "threads": 1,
        "bundle": {
            "name": "vi-kda-toy",
            "out": str(tmp_path / "models" / "vi-kda-toy"),
            "variants": ["fp32"],
        },
    }
    return config


def test_kda_run_pipeline_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = toy_run_config(tmp_path)
    (tmp_path / "kda.yaml").write_text(yaml.safe_dump(config))
    assert main(["kda", "run", str(tmp_path / "kda.yaml")]) == 0
    assert "trainable parameters" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "kda-report.json").read_text())
    assert report["epochs"] == 2
    assert report["teacher_kind"] == "encoder"
    after = report["balance"]["after"]
    assert len({n for n in after.values() if n}) == 1  # balanced to the smallest class
    assert (tmp_path / "run" / "adapter.safetensors").is_file()
    bundle = load_bundle(tmp_path / "models" / "vi-kda-toy")
    assert bundle.manifest.task == "sentiment"
    assert bundle.manifest.raw["provenance"]["method"] == "KDA (full adapter)"
    assert main(["kda", "run", str(tmp_path / "kda.yaml"), "--no-export"]) == 0  # resumes
    shutil.rmtree(tmp_path / "models")
    assert main(["kda", "run", str(tmp_path / "kda.yaml"), "--no-train"]) == 0
    assert load_bundle(tmp_path / "models" / "vi-kda-toy").manifest.name == "vi-kda-toy"
    shutil.copytree(tmp_path / "run", tmp_path / "moved")  # a moved run still resumes
    moved = ["kda", "run", str(tmp_path / "kda.yaml"), "--out", str(tmp_path / "moved")]
    assert main([*moved, "--no-train", "--no-export"]) == 0
    (tmp_path / "run" / "loop-checkpoint.pt").unlink()
    assert main(["kda", "run", str(tmp_path / "kda.yaml"), "--no-train"]) == 2


def test_kda_run_with_feature_loss_keeps_features_and_relabels_old_caches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toy_run_config(tmp_path) | {"epochs": 1}
    (tmp_path / "kda.yaml").write_text(yaml.safe_dump(config))
    assert main(["kda", "run", str(tmp_path / "kda.yaml"), "--no-export"]) == 0
    cache = tmp_path / "run" / "pseudo-labels.npz"
    saved = dict(np.load(cache))
    assert saved["features"].shape == (saved["probs"].shape[0], 2 * D)
    np.savez(cache, probs=saved["probs"], digest=saved["digest"])  # as older runs wrote it
    featured = ["kda", "run", str(tmp_path / "kda.yaml"), "--no-export", "--feature-weight", "0.5"]
    assert main([*featured, "--out", str(tmp_path / "featured")]) == 0
    report = json.loads((tmp_path / "featured" / "kda-report.json").read_text())
    assert report["feature_weight"] == 0.5
    assert "heldout_feature_loss" in report["history"][0]
    shutil.copy(cache, tmp_path / "featured" / "pseudo-labels.npz")
    (tmp_path / "featured" / "loop-checkpoint.pt").unlink()
    assert main([*featured, "--out", str(tmp_path / "featured")]) == 0  # relabelled
    assert "features" in np.load(tmp_path / "featured" / "pseudo-labels.npz")
    capsys.readouterr()
    assert main([*featured, "--feature-weight", "-1"]) == 2
    assert "kda.yaml: feature_weight: Input should be greater than or equal to 0" in (
        capsys.readouterr().err
    )


def test_example_config_parses_and_bad_settings_are_named(tmp_path: Path) -> None:

    recipe = Path(__file__).resolve().parents[2] / "training/recipes/kda-vi-sentiment.yaml"
    config = KDAConfig.from_file(recipe)
    assert config.variant == "full"
    assert len(config.parallel) == 6
    assert config.parallel[-1].target_path is not None  # SIB-200, aligned on index_id
    assert not config.target.startswith("~")
    assert config.bundle.out == Path("models/vi-sentiment")
    data = yaml.safe_load(recipe.read_text())
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**data, "variant": "mlp"}))
    with pytest.raises(
        ValueError,
        match=r"bad.yaml: variant: Input should be 'linear', 'linear\+self', .* or 'full'",
    ):
        KDAConfig.from_file(tmp_path / "bad.yaml")
