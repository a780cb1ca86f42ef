"""Fine-tune and evaluate end to end on a tiny random model and tiny tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.batches import length_grouped_batches, length_sorted_batches
from training.cli import main
from training.demo import build_char_tokenizer, tiny_classifier
from training.evaluate.metrics import scores
from training.finetune.config import FinetuneConfig
from training.finetune.trainer import Finetuner

LABELS = ["negative", "neutral", "positive"]
WORDS = {"negative": "bad awful", "neutral": "table chair", "positive": "good great"}


def write_tsv(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id\tlabel\ttext\n")
        for i in range(rows):
            label = LABELS[i % 3]
            filler = " ".join(rng.choice(["the", "a", "it", "was"], size=rng.integers(1, 6)))
            handle.write(f"{i}\t{label}\t{filler} {WORDS[label]}\n")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = build_char_tokenizer(["bad", "awful", "table", "chair", "good", "great"], 64)
    model = tiny_classifier(len(tokenizer), 2, 64, seed=0, hidden=32, layers=1)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def test_finetune_learns_saves_best_and_resumes(tiny_model: Path, tmp_path: Path) -> None:
    write_tsv(tmp_path / "train.tsv", 240, 0)
    write_tsv(tmp_path / "val.tsv", 60, 1)
    config = FinetuneConfig(
        model=str(tiny_model),
        train=tmp_path / "train.tsv",
        val=tmp_path / "val.tsv",
        out=tmp_path / "ft",
        epochs=4,
        batch_size=16,
        learning_rate=3e-3,
        threads=1,
    )
    report = Finetuner(config).run()
    assert report["steps"] == 4 * 15
    assert report["best_val_macro_f1"] > 0.9  # the label words are easy to learn
    assert len(report["history"]) == 8  # two evaluations per epoch
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert saved["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    again = Finetuner(config).run()  # everything was done: resumes at the end
    assert again["steps"] == report["steps"]
    assert again["history"] == report["history"]
    changed = config.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="made with other settings"):
        Finetuner(changed).run()


def test_evaluate_cli_scores_binary_sets_without_neutral(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tsv(tmp_path / "train.tsv", 120, 0)
    write_tsv(tmp_path / "val.tsv", 30, 1)
    assert (
        main(
            [
                "finetune",
                "--model",
                str(tiny_model),
                "--train",
                str(tmp_path / "train.tsv"),
                "--val",
                str(tmp_path / "val.tsv"),
                "--out",
                str(tmp_path / "ft"),
                "--epochs",
                "1",
                "--lr",
                "3e-3",
                "--batch-size",
                "16",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    with (tmp_path / "binary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "text", "label"])
        writer.writerows([[0, "good great, nice", "positive"], [1, "awful\nbad", "negative"]])
    report = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tmp_path / "ft"),
                "--data",
                str(tmp_path / "binary.csv"),
                str(tmp_path / "val.tsv"),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    results = json.loads(report.read_text())["results"]
    binary, three = results
    assert binary["n"] == 2
    assert binary["scored_labels"] == ["negative", "positive"]
    assert sum(binary["confusion"][i][1] for i in range(3)) == 0  # neutral never predicted
    assert three["scored_labels"] == LABELS
    assert three["tokens_per_text"]["mean"] > 3
    assert 0 <= three["truncated_share"] <= 1
    assert "accuracy=" in capsys.readouterr().out


def test_evaluate_names_unknown_labels(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "odd.tsv").write_text("label\ttext\nmixed\tso so\n")
    code = main(["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "odd.tsv")])
    assert code == 2
    assert "labels ['mixed'] the model does not know" in capsys.readouterr().err


def test_scores_macro_f1_and_confusion() -> None:
    gold = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    result = scores(gold, pred, LABELS)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * 0.5 * 1 / 1.5, 2 * 1 * (2 / 3) / (1 + 2 / 3)]
    assert result["macro_f1"] == pytest.approx(np.mean(f1))


def test_length_grouped_batches_cover_everything_once() -> None:
    lengths = [int(x) for x in np.random.default_rng(0).integers(1, 100, size=1000)]
    batches = length_grouped_batches(lengths, 32, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches != length_grouped_batches(lengths, 32, seed=4)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 20  # sorted within windows: little padding


def test_length_sorted_batches_cover_everything_once_shortest_first() -> None:
    ids = [[1] * n for n in np.random.default_rng(0).integers(1, 100, size=203)]
    batches = list(length_sorted_batches(ids, 32))
    assert [len(b) for b in batches] == [32] * 6 + [11]
    assert sorted(i for b in batches for i in b) == list(range(203))
    widths = [len(ids[i]) for b in batches for i in b]
    assert widths == sorted(widths)
    assert list(length_sorted_batches([], 8, desc="nothing")) == []


def test_config_names_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        FinetuneConfig(model="m", train=tmp_path, val=tmp_path, out=tmp_path, learning_rate=5)
    settings = f"model: m\ntrain: {tmp_path}\nval: {tmp_path}\nout: o\n"
    (tmp_path / "typo.yaml").write_text(settings + "epoch: 3\n")
    with pytest.raises(ValueError, match=r"typo.yaml: epoch: Extra inputs are not permitted"):
        FinetuneConfig.from_file(tmp_path / "typo.yaml")
    (tmp_path / "ft.yaml").write_text(settings)
    assert FinetuneConfig.from_file(tmp_path / "ft.yaml", epochs=5, seed=None).epochs == 5
    with pytest.raises(ValueError, match=r"ft.yaml: batch_size: Input should be greater"):
        FinetuneConfig.from_file(tmp_path / "ft.yaml", batch_size=0)  # an override, checked


def write_polar_tsv(path: Path, rows: int) -> None:
    """A two-class file in SST-2's layout: `label` 0/1 first, the text in `content`."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("label\tcontent\n")
        for i in range(rows):
            handle.write(f"{i % 2}\tit was {'great' if i % 2 else 'awful'}\n")


@pytest.mark.parametrize(("loss", "neutral_learns"), [("own_labels", False), ("all_labels", True)])
def test_a_two_class_file_teaches_only_its_own_labels_when_asked(
    tiny_model: Path, tmp_path: Path, loss: str, neutral_learns: bool
) -> None:
    write_tsv(tmp_path / "train.tsv", 30, 0)
    write_tsv(tmp_path / "val.tsv", 12, 1)
    write_polar_tsv(tmp_path / "polar.tsv", 20)
    polar = {
        "path": tmp_path / "polar.tsv",
        "text_column": "content",
        "label_map": {"0": "negative", "1": "positive"},
    }
    config = FinetuneConfig(
        model=str(tiny_model),
        train=tmp_path / "train.tsv",
        val=tmp_path / "val.tsv",
        out=tmp_path / "ft",
        extra_train=[polar | {"loss": loss}],
        watch=[polar],
        threads=1,
    )
    tuner = Finetuner(config)
    assert tuner.train_rows == {"train.tsv": 30, "polar.tsv": 20}
    module = tuner.module()
    rows = list(range(30, 50))  # the polar file's rows only
    tuner.loss(module, rows, torch.device("cpu")).backward()
    neutral = LABELS.index("neutral")
    gradient = module.classifier.weight.grad[neutral].abs().sum().item()  # type: ignore[union-attr]
    assert (gradient > 0) == neutral_learns
    watched = tuner.evaluate(module)
    assert 0 <= watched["polar_accuracy"] <= 1
    assert 0 <= watched["polar_other_label_share"] <= 1


def test_a_label_map_onto_an_unknown_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"polar.tsv: label_map names \['good'\]"):
        FinetuneConfig(
            model="m",
            train=tmp_path,
            val=tmp_path,
            out=tmp_path,
            extra_train=[{"path": tmp_path / "polar.tsv", "label_map": {"1": "good"}}],
        )
