"""The shared training loop: sharding, and the fine-tune on two CPU processes (gloo) against
one process with the same global batch, including a run stopped on one process and resumed
on two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.training.test_compress import toy_compression
from tests.training.test_finetune_evaluate import write_tsv
from tests.training.test_kda import toy_run_config
from training.demo import build_char_tokenizer, tiny_classifier
from training.loop import CHECKPOINT, LoopSettings, shard


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_and_cover_the_batch(world: int) -> None:
    rows = [7, 3, 9, 1, 4]
    parts = [shard(rows, rank, world) for rank in range(world)]
    assert sorted(i for part in parts for i in part) == sorted(rows)
    assert sum(len(p) for p in parts) == len(rows)


def test_settings_refuse_unknown_and_bad_values() -> None:
    with pytest.raises(ValueError, match="accumulation"):
        LoopSettings(accumulation=0)
    with pytest.raises(ValueError, match="Extra inputs"):
        LoopSettings(epochs=1, step=3)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def still_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier without dropout: one and two processes then compute the same
    gradients, up to the order of float sums."""
    out = tmp_path_factory.mktemp("still-model")
    tokenizer = build_char_tokenizer(["bad", "awful", "table", "chair", "good", "great"], 64)
    model = tiny_classifier(len(tokenizer), 3, 64, seed=0, hidden=32, layers=1)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_tsv(out / "train.tsv", 240, 0)
    write_tsv(out / "val.tsv", 30, 1)
    return out


def finetune(model: Path, out: Path, processes: int, epochs: int = 6) -> subprocess.Popen:
    args = [
        "-m", "training", "finetune", "--model", str(model), "--train", str(model / "train.tsv"),
        "--val", str(model / "val.tsv"), "--out", str(out), "--epochs", str(epochs),
        "--batch-size", "16", "--lr", "3e-3", "--threads", "1",
    ]  # fmt: skip
    return launch(args, processes)


def launch(args: list[str], processes: int) -> subprocess.Popen:
    """`python ARGS` on one process, or under torchrun on several (CPU, gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, *args]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node"]
        command = [*launcher, str(processes), "--standalone", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finished(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=600)[0].decode()
    assert process.returncode == 0, output[-3000:]
    return output


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


@pytest.mark.slow
def test_two_processes_match_one_and_resume_across_process_counts(
    still_model: Path, tmp_path: Path
) -> None:
    finished(finetune(still_model, tmp_path / "one", 1))
    output = finished(finetune(still_model, tmp_path / "two", 2))
    one = json.loads((tmp_path / "one" / "finetune-report.json").read_text())
    two = json.loads((tmp_path / "two" / "finetune-report.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["steps"] == two["steps"] == 6 * 15  # the same global batches
    assert one["best_val_macro_f1"] > 0.9  # it learns
    assert output.count('"best_val_macro_f1"') == 1  # one summary, from the main process
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a["step"] == b["step"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)  # over both ranks
        assert a["val_macro_f1"] == pytest.approx(b["val_macro_f1"], abs=0.05)
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-3
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".partial") == []

    # stopped on one process after its first checkpoint, resumed on two
    stopped = finetune(still_model, tmp_path / "resumed", 1)
    deadline = time.monotonic() + 300
    while not (tmp_path / "resumed" / CHECKPOINT).is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped.kill()
    stopped.wait()
    saved = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)
    assert 0 < saved["state"]["step"] < 90
    assert "resuming at step" in finished(finetune(still_model, tmp_path / "resumed", 2))
    resumed = json.loads((tmp_path / "resumed" / "finetune-report.json").read_text())
    assert resumed["steps"] == 90
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in one["history"]]
    for a, b in zip(one["history"], resumed["history"], strict=True):
        assert a["val_macro_f1"] == pytest.approx(b["val_macro_f1"], abs=0.05)
    w3 = weights(tmp_path / "resumed")
    assert max(float((w1[k] - w3[k]).abs().max()) for k in w1) < 1e-3


def toy(kind: str, out: Path, processes: int, epochs: int = 4) -> str:
    args = ["-m", "tests.training.distributed_toys", kind, str(out), str(epochs)]
    return finished(launch(args, processes))


def toy_rows(out: Path, rank: int) -> list[list[int]]:
    rows: list[list[int]] = json.loads((out.parent / f"{out.name}-rows-{rank}.json").read_text())
    return rows


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kda", "compress"])
def test_the_toy_distillations_on_two_processes_match_one_and_resume(
    kind: str, tmp_path: Path
) -> None:
    """The KDA student's and the compressed student's distillation: two CPU processes (gloo)
    train on disjoint halves of the same global batches to the weights one process reaches
    (within 1e-3: float sums in another order), write one set of files, and a run finished
    after 2 epochs on one process continues on two to the uninterrupted run's curve."""
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    toy(kind, one, 1)
    output = toy(kind, two, 2)
    assert "resuming" not in output
    whole, halves = toy_rows(one, 0), (toy_rows(two, 0), toy_rows(two, 1))
    assert len(whole) == len(halves[0]) == len(halves[1]) > 0
    for batch, first, second in zip(whole, *halves, strict=True):
        assert not set(first) & set(second)  # the ranks saw disjoint data
        assert sorted(first + second) == sorted(batch)  # and together the whole batch
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    reports = [json.loads((d / "toy-report.json").read_text()) for d in (one, two)]
    metric = "val_loss" if kind == "compress" else "heldout_loss"
    first_loss, last_loss = reports[0]["history"][0][metric], reports[0]["history"][-1][metric]
    assert last_loss < first_loss  # it learns
    for a, b in zip(reports[0]["history"], reports[1]["history"], strict=True):
        assert a["step"] == b["step"]
        assert a[metric] == pytest.approx(b[metric], rel=1e-3)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
    weights_one = load_file(str(one / "toy.safetensors"))
    assert close(weights_one, load_file(str(two / "toy.safetensors"))) < 1e-3

    toy(kind, resumed, 1, epochs=2)  # finished after 2 epochs, then continued on two
    assert "resuming at step" in toy(kind, resumed, 2)
    continued = json.loads((resumed / "toy-report.json").read_text())
    assert [h["step"] for h in continued["history"]] == [h["step"] for h in reports[0]["history"]]
    for a, b in zip(reports[0]["history"], continued["history"], strict=True):
        assert a[metric] == pytest.approx(b[metric], rel=1e-3)
    assert close(weights_one, load_file(str(resumed / "toy.safetensors"))) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kda", "compress"])
def test_a_whole_training_command_on_two_processes_writes_one_set_of_files(
    method: str, tmp_path: Path
) -> None:
    """`kda run` and `compress run` (every stage: distillations, heads, vocabulary, export)
    under torchrun: the main process alone writes, the others wait for its files; the run
    writes what a one-process run writes."""
    make = toy_run_config if method == "kda" else toy_compression
    config = make(tmp_path) | ({"dropout": 0.0} if method == "kda" else {})
    for name in ("one", "two"):
        bundle = {"out": str(tmp_path / "models" / name)}
        if method == "compress":
            bundle |= {"name": "vi-topic", "sources": str(tmp_path / "sources" / name)}
        settings = config | {"out": str(tmp_path / name), "bundle": config["bundle"] | bundle}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(settings))
    finished(launch(["-m", "training", method, "run", str(tmp_path / "one.yaml")], 1))
    output = finished(launch(["-m", "training", method, "run", str(tmp_path / "two.yaml")], 2))

    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    for folder in ("", "models/", "sources/") if method == "compress" else ("", "models/"):
        one, two = tmp_path / folder / "one", tmp_path / folder / "two"
        assert files(two) == files(one), folder
    assert not list((tmp_path / "two").rglob("*.partial"))
    if method == "kda":
        reports = [
            json.loads((tmp_path / n / "kda-report.json").read_text()) for n in ("one", "two")
        ]
        # the same training within Adam's amplification of float-order noise (the toy
        # distillation test above checks the weights themselves)
        assert reports[1]["best_heldout_loss"] == pytest.approx(
            reports[0]["best_heldout_loss"], rel=1e-2
        )
        assert output.count('"best_heldout_loss"') == 1  # one summary, from the main process
    else:
        heads = [
            json.loads((tmp_path / n / "6-heads" / "report.json").read_text())
            for n in ("one", "two")
        ]
        assert list(heads[1]["results"]) == list(heads[0]["results"])
        assert output.count('"export": {') == 1  # one summary, from the main process
