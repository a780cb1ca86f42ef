"""Soft labels for unlabeled target-language text from an ensemble of zero-shot models.

Each member (a served bundle, or a linear probe run) gives class probabilities; each is
first moved from the prior it was trained under to the prior EM finds for this text (its own
estimate), then the members' probabilities are averaged. A slice of the texts is held out so
the method trained on the labels can stop early without looking at any evaluation set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from training.prior import adjust, em_prior, logit_shift, smoothed
from training.soft_labels import EnsembleReport, Member, SoftLabels, Target


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


def _shares(probs: np.ndarray) -> list[float]:
    counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
    return (counts / len(probs)).round(4).tolist()


def _cached_outputs(
    path: Path, texts: list[str], variant: str, out: Path
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A member's outputs, kept in `out` by the texts' digest: relabelling with another
    setting does not run the models again."""
    identity = path / "manifest.json" if (path / "manifest.json").is_file() else path / "probe.json"
    key = hashlib.sha256(identity.read_bytes() if identity.is_file() else b"")
    key.update(variant.encode())
    key.update("\0".join(texts).encode())
    cache = out / f"member-{path.name}-{key.hexdigest()[:16]}.npz"
    if cache.is_file():
        saved = np.load(cache)
        return [str(x) for x in saved["labels"]], saved["probs"], saved["train_prior"]
    labels, probs, train_prior = member_outputs(path, texts, variant)
    np.savez(
        cache, labels=np.array(labels), probs=probs.astype(np.float32), train_prior=train_prior
    )
    return labels, probs, train_prior


def label(
    members: list[Path],
    texts: list[str],
    out: Path,
    heldout: float = 0.05,
    seed: int = 13,
    variant: str = "fp32",
    target: Target = "uniform",
) -> EnsembleReport:
    """Soft labels for `texts`: each member moved from its training prior to the `target`
    prior (`uniform`: every class equally likely, the paper's balanced set-up; `em`: the prior
    EM estimates on these texts, Saerens et al.), then averaged. EM's estimate is reported
    either way: it assumes only the class mix changed between training and these texts, which
    a cross-lingual, cross-domain shift need not honour."""
    if not texts:
        raise ValueError("no texts to label")
    out.mkdir(parents=True, exist_ok=True)
    names: list[str] | None = None
    corrected, report_members = [], []
    for path in members:
        labels, probs, train_prior = _cached_outputs(path, texts, variant, out)
        if names is not None and labels != names:
            raise ValueError(f"{path} has labels {labels}, the first member {names}")
        names = labels
        estimate, steps = em_prior(probs, train_prior)
        prior = estimate if target == "em" else np.full(len(labels), 1 / len(labels))
        corrected.append(adjust(probs, train_prior, prior))
        report_members.append(
            Member(
                member=str(path),
                train_prior=train_prior.round(4).tolist(),
                em_prior=estimate.round(4).tolist(),
                em_iterations=steps,
                target_prior=prior.round(4).tolist(),
                logit_shift=logit_shift(train_prior, prior).round(4).tolist(),
                predicted_share=_shares(probs),
                corrected_share=_shares(corrected[-1]),
            )
        )
        print(report_members[-1].model_dump_json(), flush=True)
    assert names is not None
    ensemble = np.mean(corrected, axis=0).astype(np.float32)
    held = np.zeros(len(texts), dtype=bool)
    held[
        np.random.default_rng(seed).permutation(len(texts))[: max(1, round(len(texts) * heldout))]
    ] = True
    votes = [c.argmax(1) for c in corrected]
    report = EnsembleReport(
        labels=names,
        target=target,
        texts=len(texts),
        heldout=int(held.sum()),
        members=report_members,
        member_agreement=round(float(np.mean(votes[0] == votes[-1])), 4),
        ensemble_share=_shares(ensemble),
    )
    SoftLabels(texts, ensemble, held, names).write(out)
    report.write(out)
    return report


def ensemble_probabilities(labels_dir: Path, texts: list[str], variant: str = "fp32") -> np.ndarray:
    """The ensemble of an `ensemble label` run applied to other texts: each member's
    probabilities moved to the run's target prior, then averaged."""
    corrected = []
    for member in EnsembleReport.read(labels_dir).members:
        _, probs, _ = member_outputs(Path(member.member), texts, variant)
        corrected.append(adjust(probs, np.array(member.train_prior), np.array(member.target_prior)))
    out: np.ndarray = np.mean(corrected, axis=0)
    return out


def heldout_fit(labels_dir: Path, model: Path, variant: str = "fp32") -> dict[str, float]:
    """How closely a model follows the ensemble on the held-out slice: cross-entropy against
    its soft labels and argmax agreement. Label-free: this is what chooses the served model."""
    soft = SoftLabels.read(labels_dir)
    held = np.flatnonzero(soft.heldout)
    target = soft.probs[held]
    _, probs, _ = member_outputs(model, [soft.texts[i] for i in held], variant)
    cross_entropy = float(-(target * np.log(np.clip(probs, 1e-9, 1))).sum(1).mean())
    agreement = float((probs.argmax(1) == target.argmax(1)).mean())
    return {
        "heldout_cross_entropy": round(cross_entropy, 5),
        "heldout_agreement": round(agreement, 4),
    }
