"""Label-free help from unlabeled in-domain text: EM priors, the linear probe, the ensemble's
soft labels, the KDA student's adaptation on them, and the sources/bundle it is packed into."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from app.bundle import load_bundle
from app.tokenization import TextEncoder
from tests.training.test_kda_package import WORDS, packed  # noqa: F401  (fixture)
from tests.training.unigram import PIECES
from training.batches import pad_rows
from training.cli import main
from training.evaluate.predictors import BundlePredictor
from training.evaluate.run import truncate
from training.kda.adapt import AdaptConfig
from training.kda.package import rebuild_student
from training.kda.reports import AdaptReport
from training.prior import adjust, em_prior, logit_shift
from training.soft_labels import REPORT, EnsembleReport
from training.sources import SOURCE


def test_em_recovers_a_shifted_prior() -> None:
    """A calibrated classifier trained under a uniform prior, applied to text that is 70%
    class 0: EM finds that prior from the posteriors alone, and adjusting moves the mean."""
    rng = np.random.default_rng(0)
    means = np.array([[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    truth = np.array([0.7, 0.2, 0.1])
    y = rng.choice(3, size=20000, p=truth)
    x = means[y] + rng.normal(size=(len(y), 2))
    log_lik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
    posterior = np.exp(log_lik - log_lik.max(1, keepdims=True))
    posterior /= posterior.sum(1, keepdims=True)  # Bayes under the uniform training prior
    uniform = np.full(3, 1 / 3)
    prior, steps = em_prior(posterior, uniform)
    assert np.abs(prior - truth).max() < 0.02
    assert 1 < steps < 200
    assert np.abs(posterior.mean(0) - truth).max() > 0.05  # uncorrected, it is off
    adjusted = adjust(posterior, uniform, prior)
    np.testing.assert_allclose(adjusted.mean(0), prior, atol=1e-5)
    shifted = np.log(posterior) + logit_shift(uniform, prior)
    softmaxed = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    np.testing.assert_allclose(softmaxed, adjusted, atol=1e-6)


def test_em_refuses_a_bad_training_prior() -> None:
    with pytest.raises(ValueError, match="positive, one value per class"):
        em_prior(np.full((4, 3), 1 / 3), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="positive"):
        em_prior(np.full((4, 3), 1 / 3), np.array([0.5, 0.5, 0.0]))


def test_truncation_keeps_the_final_special_token() -> None:
    assert truncate([0, 5, 6, 7, 8, 2], 4) == [0, 5, 6, 2]
    assert truncate([0, 5, 2], 4) == [0, 5, 2]


def unlabeled(root: Path) -> Path:
    rng = np.random.default_rng(1)
    lines = []
    for i in range(240):
        words = list(rng.choice(WORDS, size=rng.integers(1, 5)))
        if i % 3 == 0:
            words = [w.upper() for w in words]  # case the lowercasing removes
        if i % 5 == 0:
            words.append("hi")  # pieces outside the trimmed vocabulary
        lines.append(" ".join(words))
    path = root / "unlabeled.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_adaptation_end_to_end(packed: Path, tmp_path: Path) -> None:  # noqa: F811
    texts = unlabeled(tmp_path)
    bundle = packed / "models" / "vi-toy"
    labels = tmp_path / "ensemble"
    assert main(["ensemble", "label", "--members", str(bundle), "--texts", str(texts),
                 "--out", str(labels), "--heldout", "0.2"]) == 0  # fmt: skip
    report = json.loads((labels / "ensemble-report.json").read_text())
    assert report["heldout"] == round(report["texts"] * 0.2)
    member = report["members"][0]
    assert len(member["em_prior"]) == 3
    assert abs(sum(member["em_prior"]) - 1) < 1e-3

    # sources whose vocabulary lacks two words the unlabeled text uses
    sources_in = tmp_path / "src-narrow"
    shutil.copytree(packed / "src", sources_in)
    kept = json.loads((sources_in / "kept-pieces.json").read_text())
    narrow = [i for i in kept if PIECES[i] not in ("▁hello", "▁world")]
    (sources_in / "kept-pieces.json").write_text(json.dumps(narrow))
    config = {
        "sources": str(sources_in),
        "labels": str(labels),
        "out": str(tmp_path / "run"),
        "epochs": 1,
        "eval_every": 2,
        "patience": 100,
        "batch_size": 16,
        "max_length": 32,
        "learning_rate": 1e-3,
        "threads": 1,
    }
    (tmp_path / "adapt.yaml").write_text(yaml.safe_dump(config))
    assert main(["kda", "adapt", str(tmp_path / "adapt.yaml")]) == 0
    run = json.loads((tmp_path / "run" / "adapt-report.json").read_text())
    history = run["history"]
    assert history[0]["step"] == 0
    assert len(history) > 2
    assert run["best_heldout_loss"] < history[0]["heldout_loss"]  # it learned the labels
    vocab = run["vocabulary"]
    assert vocab["pieces"] == len(kept)  # the two words are back
    assert vocab["heldout_after"]["unk_share"] < vocab["heldout_before"]["unk_share"]
    assert len(run["prior"]["logit_shift"]) == 3

    # a second epoch resumes from the checkpoint and continues the same history
    config["epochs"] = 2
    (tmp_path / "adapt.yaml").write_text(yaml.safe_dump(config))
    assert main(["kda", "adapt", str(tmp_path / "adapt.yaml")]) == 0
    again = json.loads((tmp_path / "run" / "adapt-report.json").read_text())
    assert again["history"][: len(history)] == history
    assert again["steps"] == 2 * run["steps"]

    sources = tmp_path / "src"
    assert main(["kda", "pack-adapted", str(tmp_path / "run"), "--out", str(sources),
                 "--reference", str(texts), "--reference-count", "30"]) == 0  # fmt: skip
    out = tmp_path / "models" / "adapted"
    assert main(["build", str(sources), "--out", str(out), "--record"]) == 0
    source = json.loads((sources / SOURCE).read_text())
    assert source["preprocessing"] == {"lowercase": True, "unicode_normalization": "NFC"}
    assert source["provenance"]["method"].endswith("+ in-domain adaptation")
    manifest = load_bundle(out).manifest
    assert manifest.raw["preprocessing"] == source["preprocessing"]

    # the logit shift is in the graph: ONNX equals the torch student, whose head carries it
    student, tokenizer, _ = rebuild_student(sources)
    plain, _, _ = rebuild_student(sources_in)
    np.testing.assert_allclose(
        student.teacher.classifier.bias.detach().numpy(),
        plain.teacher.classifier.bias.detach().numpy() + np.array(source["logit_shift"]),
        atol=1e-3,
    )
    ids = [list(x) for x in tokenizer(["XIN CHÀO", "xin chào"])["input_ids"]]
    assert ids[0] == ids[1]  # the tokenizer itself lowercases
    x, mask = pad_rows(ids, [0, 1], tokenizer.pad_token_id, torch.device("cpu"))
    session = ort.InferenceSession(str(out / "model.onnx"))
    onnx_logits = session.run(None, {"input_ids": x.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(onnx_logits, student(x, mask).logits.numpy(), atol=1e-4)

    # the service and the evaluator read the manifest's preprocessing the same way
    encoder = TextEncoder("adapted", out / "tokenizer" / "tokenizer.json", 32,
                          manifest.raw["preprocessing"])  # fmt: skip
    served = [e.ids.tolist() for e in encoder.encode(["Xin Chào", "xin chào"], truncate=True)]
    evaluated = BundlePredictor(out).token_ids(["Xin Chào", "xin chào"])
    assert served[0] == served[1] == evaluated[0] == evaluated[1]

    # a rebuild reproduces the recorded reference predictions
    assert main(["build", str(sources), "--out", str(tmp_path / "again")]) == 0


def test_adaptation_mixes_in_the_kda_runs_training_pairs(packed: Path, tmp_path: Path) -> None:  # noqa: F811
    """`pairs` adds the KDA run's own training pairs (target side, the teacher's cached soft
    labels; not its held-out pairs) to the unlabeled texts; the held-out check is unchanged."""
    from training.kda.pipeline import training_pairs

    texts, probs, names = training_pairs(packed / "run")
    kda = json.loads((packed / "run" / "kda-report.json").read_text())
    assert len(texts) == len(probs) == kda["train_pairs"]
    cached = np.load(packed / "run" / "pseudo-labels.npz")["probs"]
    pairs = (packed / "pairs.tsv").read_text(encoding="utf-8").splitlines()[1:]
    targets = [line.split("\t")[1] for line in pairs]
    for text, row in zip(texts, probs, strict=True):  # each pair with the teacher's own label
        same = cached[[i for i, target in enumerate(targets) if target == text]]
        assert (same == row).all(axis=1).any()
    assert len(names) == 3

    labels = tmp_path / "ensemble"
    assert main(["ensemble", "label", "--members", str(packed / "models" / "vi-toy"),
                 "--texts", str(unlabeled(tmp_path)), "--out", str(labels),
                 "--heldout", "0.2"]) == 0  # fmt: skip
    config = {"sources": str(packed / "src"), "labels": str(labels), "epochs": 1,
              "batch_size": 16, "max_length": 32, "threads": 1}  # fmt: skip
    reports = {}
    for name, extra in (("plain", {}), ("mixed", {"pairs": str(packed / "run")})):
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(yaml.safe_dump(config | extra | {"out": str(tmp_path / name)}))
        assert main(["kda", "adapt", str(config_file)]) == 0
        reports[name] = json.loads((tmp_path / name / "adapt-report.json").read_text())
    plain, mixed = reports["plain"], reports["mixed"]
    assert plain["pairs"] == 0
    assert mixed["pairs"] == len(texts)
    assert (mixed["train"], mixed["heldout"]) == (plain["train"], plain["heldout"])
    assert mixed["steps"] > plain["steps"]  # the pairs are trained on too

    broken = tmp_path / "broken-run"
    shutil.copytree(packed / "run", broken)
    (broken / "pseudo-labels.npz").unlink()
    with pytest.raises(ValueError, match="no teacher labels of its pairs"):
        training_pairs(broken)


def test_adaptation_names_a_pairs_directory_that_is_no_kda_run_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "adapt.yaml"
    out = tmp_path / "out"
    config.write_text(yaml.safe_dump({
        "sources": str(tmp_path / "no-sources"), "labels": str(tmp_path / "no-labels"),
        "out": str(out), "pairs": str(tmp_path),
    }))  # fmt: skip
    assert main(["kda", "adapt", str(config)]) == 2
    assert f"{tmp_path} is not a `kda run` directory" in capsys.readouterr().err
    assert not out.exists()


def test_adaptation_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sources": "s", "labels": "l", "out": "o", "epoch": 3}))
    with pytest.raises(ValueError, match=r"bad\.yaml: epoch: Extra inputs are not permitted"):
        AdaptConfig.from_file(bad)
    bad.write_text(yaml.safe_dump({"sources": "s", "labels": "l", "out": "o", "batch_size": 0}))
    with pytest.raises(ValueError, match="batch_size"):
        AdaptConfig.from_file(bad)


def test_ensemble_refuses_a_member_without_a_training_prior(
    packed: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(packed / "models" / "vi-toy", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["provenance"].pop("balance")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    args = ["ensemble", "label", "--members", str(bundle), "--texts", str(unlabeled(tmp_path))]
    assert main([*args, "--out", str(tmp_path / "e")]) == 2
    assert "training prior is unknown" in capsys.readouterr().err
    assert main([*args[:3], str(tmp_path), *args[4:], "--out", str(tmp_path / "e")]) == 2
    assert "neither a bundle" in capsys.readouterr().err


REPORTS = Path(__file__).resolve().parents[2] / "reports" / "kda" / "vi-adapt"


@pytest.mark.parametrize("name", ["adapt-1.json", "adapt-2.json"])
def test_committed_adaptation_reports_read_as_their_model(name: str) -> None:
    report = AdaptReport.read(REPORTS / name)
    assert report.prior is not None
    assert len(report.prior.logit_shift) == 3


@pytest.mark.parametrize("name", ["ensemble-1.json", "ensemble-2.json", "ensemble-em.json"])
def test_committed_ensemble_reports_read_as_their_model(name: str, tmp_path: Path) -> None:
    shutil.copy(REPORTS / name, tmp_path / REPORT)
    report = EnsembleReport.read(tmp_path)
    assert report.labels == ["negative", "neutral", "positive"]
    assert all(len(m.target_prior) == 3 for m in report.members)


def test_a_report_of_another_shape_is_refused_naming_its_field(tmp_path: Path) -> None:
    report = json.loads((REPORTS / "adapt-1.json").read_text())
    report["vocabulary"].pop("pieces")
    (tmp_path / "adapt-report.json").write_text(json.dumps(report))
    wrong = r"adapt-report\.json: vocabulary\.pieces: Field required"
    with pytest.raises(ValueError, match=wrong):
        AdaptReport.read(tmp_path / "adapt-report.json")
    with pytest.raises(FileNotFoundError, match="ensemble label"):
        EnsembleReport.read(tmp_path)
