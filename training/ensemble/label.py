"""Soft labels for unlabeled target-language text from an ensemble of zero-shot models.

Each member (a served bundle, or a linear probe run) gives class probabilities; each is
first moved from the prior it was trained under to the prior EM finds for this text (its own
estimate), then the members' probabilities are averaged. A slice of the texts is held out so
the method trained on the labels can stop early without looking at any evaluation set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.prior import adjust, em_prior, logit_shift, smoothed

LABELS = "labels.npz"
TEXTS = "texts.json"
REPORT = "ensemble-report.json"


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    out: np.ndarray = shifted / shifted.sum(1, keepdims=True)
    return out


def member_outputs(
    path: Path, texts: list[str], variant: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, probabilities and training prior of one member."""
    if (path / "manifest.json").is_file():
        from training.evaluate.predictors import BundlePredictor
        from training.evaluate.run import predict_logits

        predictor = BundlePredictor(path, variant)
        logits, _ = predict_logits(predictor, texts, desc=path.name)
        manifest = json.loads((path / "manifest.json").read_text())
        provenance = manifest.get("provenance", {})
        balance = provenance.get("balance")
        counts = provenance.get("prior") or (
            balance.get("after", balance) if isinstance(balance, dict) else None
        )
        if not isinstance(counts, dict) or set(counts) != set(predictor.labels):
            raise ValueError(
                f"{path}'s manifest records neither the prior its logits assume "
                "(provenance.prior) nor its training data's class counts (provenance.balance), "
                "so its training prior is unknown"
            )
        prior = np.array([counts[name] for name in predictor.labels], dtype=np.float64)
        return predictor.labels, softmax(logits), smoothed(prior)
    if (path / "probe.json").is_file():
        from training.probe.fit import Probe

        probe = Probe(path)
        return (
            probe.labels,
            softmax(probe.logits(texts)),
            np.array(probe.settings["train_prior"], dtype=np.float64),
        )
    raise FileNotFoundError(f"{path} is neither a bundle (manifest.json) nor a probe run")


def label(
    members: list[Path],
    texts: list[str],
    out: Path,
    heldout: float = 0.05,
    seed: int = 13,
    variant: str = "fp32",
) -> dict[str, Any]:
    if not texts:
        raise ValueError("no texts to label")
    out.mkdir(parents=True, exist_ok=True)
    names: list[str] | None = None
    corrected, raw, report_members = [], {}, []
    for path in members:
        labels, probs, train_prior = member_outputs(path, texts, variant)
        if names is not None and labels != names:
            raise ValueError(f"{path} has labels {labels}, the first member {names}")
        names = labels
        prior, steps = em_prior(probs, train_prior)
        corrected.append(adjust(probs, train_prior, prior))
        raw[path.name] = probs.astype(np.float32)
        report_members.append(
            {
                "member": str(path),
                "train_prior": train_prior.round(4).tolist(),
                "em_prior": prior.round(4).tolist(),
                "em_iterations": steps,
                "logit_shift": logit_shift(train_prior, prior).round(4).tolist(),
                "predicted_share": np.bincount(probs.argmax(1), minlength=len(labels))
                .__truediv__(len(texts))
                .round(4)
                .tolist(),
            }
        )
        print(json.dumps(report_members[-1]), flush=True)
    assert names is not None
    ensemble = np.mean(corrected, axis=0).astype(np.float32)
    held = np.zeros(len(texts), dtype=bool)
    held[
        np.random.default_rng(seed).permutation(len(texts))[: max(1, round(len(texts) * heldout))]
    ] = True
    votes = [c.argmax(1) for c in corrected]
    report = {
        "labels": names,
        "texts": len(texts),
        "heldout": int(held.sum()),
        "members": report_members,
        "member_agreement": round(float(np.mean(votes[0] == votes[-1])), 4),
        "ensemble_share": np.bincount(ensemble.argmax(1), minlength=len(names))
        .__truediv__(len(texts))
        .round(4)
        .tolist(),
    }
    (out / TEXTS).write_text(json.dumps(texts, ensure_ascii=False))
    arrays: dict[str, Any] = {f"member_{i}": p for i, p in enumerate(raw.values())}
    arrays |= {"probs": ensemble, "heldout": held, "labels": np.array(names)}
    np.savez(out / LABELS, **arrays)
    (out / REPORT).write_text(json.dumps(report, indent=2))
    return report


def ensemble_probabilities(labels_dir: Path, texts: list[str], variant: str = "fp32") -> np.ndarray:
    """The ensemble of an `ensemble label` run applied to other texts: each member's
    probabilities moved to the prior EM estimated on the unlabeled text, then averaged."""
    report = json.loads((labels_dir / REPORT).read_text())
    corrected = []
    for member in report["members"]:
        _, probs, _ = member_outputs(Path(member["member"]), texts, variant)
        corrected.append(
            adjust(probs, np.array(member["train_prior"]), np.array(member["em_prior"]))
        )
    out: np.ndarray = np.mean(corrected, axis=0)
    return out


def heldout_fit(labels_dir: Path, model: Path, variant: str = "fp32") -> dict[str, float]:
    """How closely a model follows the ensemble on the held-out slice: cross-entropy against
    its soft labels and argmax agreement. Label-free: this is what chooses the served model."""
    texts = json.loads((labels_dir / TEXTS).read_text())
    saved = np.load(labels_dir / LABELS)
    held = np.flatnonzero(saved["heldout"])
    target = saved["probs"][held]
    _, probs, _ = member_outputs(model, [texts[i] for i in held], variant)
    cross_entropy = float(-(target * np.log(np.clip(probs, 1e-9, 1))).sum(1).mean())
    agreement = float((probs.argmax(1) == target.argmax(1)).mean())
    return {
        "heldout_cross_entropy": round(cross_entropy, 5),
        "heldout_agreement": round(agreement, 4),
    }
