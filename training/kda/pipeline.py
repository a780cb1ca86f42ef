"""`python -m training kda run CONFIG`: pseudo-label -> balance -> train -> export.

Every step leaves its result in the run directory (`pseudo-labels.npz`, `balance.json`,
`loop-checkpoint.pt`, `best-adapter.pt`, `adapter.safetensors`, `kda-report.json`), so a rerun
picks up where the last one stopped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec
from training.kda.config import KDAConfig
from training.kda.data import balance, pseudo_label, read_pairs, split_heldout
from training.kda.reports import KDA_REPORT, Balance, KDAReport
from training.kda.student import KDAStudent, TeacherKind, teacher_kind
from training.kda.train import FeatureTargets, FitSettings, fit
from training.loop import processes


def _digest(config: KDAConfig) -> str:
    parts = [config.teacher, str(config.max_length), str(config.limit)]
    parts += [f"{p.path}:{p.path.stat().st_size}:{p.source_column}" for p in config.parallel]
    parts += [f"{p.target_path}:{p.key_column}" for p in config.parallel if p.target_path]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _training_settings(config: KDAConfig) -> dict[str, Any]:
    """What a checkpoint depends on: not how the bundle is written, nor the thread count, nor
    where the run directory is (a moved or copied run resumes). The paper's loss (no feature
    weight) leaves the fingerprint as runs made before the setting existed wrote it."""
    skip = {"bundle", "threads", "out"}
    if not config.feature_weight:
        skip.add("feature_weight")
    return {k: v for k, v in config.to_json().items() if k not in skip}


def _teacher_targets(
    config: KDAConfig, teacher: Any, kind: TeacherKind, tokenizer: Any, sources: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher's probabilities (and sentence features) on the source side, cached in the
    run directory; a cache made before features were kept is relabelled only if they are
    needed."""
    cache = config.out / "pseudo-labels.npz"
    digest = _digest(config)
    if cache.is_file():
        saved = np.load(cache)
        if str(saved["digest"]) == digest and ("features" in saved or not config.feature_weight):
            return saved["probs"], saved.get("features")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    probs, features = pseudo_label(teacher.to(device), kind, tokenizer, sources, config.max_length)
    teacher.cpu()
    np.savez(cache, probs=probs, features=features, digest=np.array(digest))
    return probs, features


def training_pairs(run: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """A finished `kda run`'s training pairs, as it trained on them: the target side of the
    balanced pairs outside its held-out slice, the teacher's probabilities (from the run's
    cache, which must match its configuration) and the label names."""
    from transformers import AutoConfig

    settings = run / "kda-config.json"
    if not settings.is_file():
        raise FileNotFoundError(f"{run} is not a `kda run` directory: it has no {settings.name}")
    config = KDAConfig.model_validate(json.loads(settings.read_text()))
    cache = run / "pseudo-labels.npz"
    saved = np.load(cache) if cache.is_file() else None
    if saved is None or str(saved["digest"]) != _digest(config):
        raise ValueError(f"{run}: no teacher labels of its pairs (finish its `kda run` first)")
    probs = saved["probs"]
    names = AutoConfig.from_pretrained(config.teacher).id2label
    labels = [names[i] for i in range(len(names))]
    pairs = read_pairs(config.parallel, config.limit)
    keep, _ = balance(probs.argmax(1), labels, config.balance, config.seed)
    train_idx, _ = split_heldout(len(keep), config.heldout, config.seed)
    rows = keep[train_idx]
    return [pairs.target[i] for i in rows], probs[rows], labels


def load_target(path: str) -> tuple[Any, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    return tokenizer, model.get_input_embeddings().weight.detach().clone()


def run(config: KDAConfig, export: bool = True, train: bool = True) -> KDAReport:
    if config.threads:
        torch.set_num_threads(config.threads)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    # under `accelerate launch` / torchrun: every process trains its share of each batch; the
    # main one labels the pairs first (the others read its cache) and alone writes files
    state = processes()
    main = state.is_main_process
    if main:
        (out / "kda-config.json").write_text(json.dumps(config.to_json(), indent=2))
    teacher = AutoModelForSequenceClassification.from_pretrained(
        config.teacher, dtype=torch.float32
    )
    kind = teacher_kind(teacher)
    labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    teacher_tok = AutoTokenizer.from_pretrained(config.teacher)
    if teacher_tok.pad_token_id is None:  # GPT-2 style tokenizers have none
        teacher_tok.pad_token = teacher_tok.eos_token
    pairs = read_pairs(config.parallel, config.limit)
    print(f"{len(pairs.source)} pairs; teacher: {kind} with labels {labels}", flush=True)

    with state.main_process_first():
        probs, sentence = _teacher_targets(config, teacher, kind, teacher_tok, pairs.source)
    keep, balance_report = balance(probs.argmax(1), labels, config.balance, config.seed)
    if main:
        (out / "balance.json").write_text(json.dumps(balance_report, indent=2))
    print(f"labels before {balance_report['before']} after {balance_report['after']}")

    target_tok, target_table = load_target(config.target)
    targets = [pairs.target[i] for i in keep]
    ids = target_tok(targets, truncation=True, max_length=config.max_length)["input_ids"]
    ids = [list(x) for x in ids]
    train_idx, held_idx = split_heldout(len(keep), config.heldout, config.seed)
    features = None
    if config.feature_weight:
        assert sentence is not None
        features = FeatureTargets.standardise(sentence[keep][train_idx], sentence[keep][held_idx])
    torch.manual_seed(config.seed)  # the adapter's initial weights: a rerun is the same run
    student = KDAStudent(
        teacher, target_table, config.variant, config.svd_rank, config.heads, config.dropout
    )
    print(
        f"adapter {config.variant}: {student.adapter.trainable_parameters():,} trainable "
        "parameters",
        flush=True,
    )
    pad = target_tok.pad_token_id if target_tok.pad_token_id is not None else 0
    settings = FitSettings(
        config.learning_rate,
        config.batch_size,
        config.epochs,
        config.patience,
        config.seed,
        feature_weight=config.feature_weight,
    )
    fitted = fit(
        student,
        [ids[i] for i in train_idx],
        probs[keep][train_idx],
        [ids[i] for i in held_idx],
        probs[keep][held_idx],
        settings,
        out,
        pad,
        fingerprint={"config": _training_settings(config), "digest": _digest(config)},
        train=train,
        features=features,
    )
    report = KDAReport(
        **fitted.model_dump(),
        teacher=config.teacher,
        teacher_kind=kind,
        target=config.target,
        variant=config.variant,
        feature_weight=config.feature_weight,
        labels=labels,
        balance=Balance.model_validate(balance_report),
        pairs=len(pairs.source),
    )
    if main:
        save_file(
            {k: v.contiguous() for k, v in student.adapter.state_dict().items()},
            str(out / "adapter.safetensors"),
        )
        if export:
            parity = [targets[i] for i in held_idx[:64]]
            report.bundle = export_bundle(student.cpu(), target_tok, config, labels, parity, report)
        report.write(out / KDA_REPORT)
    state.wait_for_everyone()
    return report


def export_bundle(
    student: KDAStudent,
    tokenizer: Any,
    config: KDAConfig,
    labels: list[str],
    parity_texts: list[str],
    report: KDAReport,
) -> str:
    info = config.bundle
    spec = BundleSpec(
        name=info.name,
        version=info.version,
        task=info.task,
        language=info.language,
        labels=labels,
        max_length=config.max_length,
        variants=tuple(info.variants),
        description=f"KDA student ({config.variant} adapter) of {Path(config.teacher).name}",
        provenance={
            "method": f"KDA ({config.variant} adapter)",
            "teacher": config.teacher,
            "teacher_kind": student.kind,
            "target_embeddings": config.target,
            "parallel_data": [str(p.path) for p in config.parallel],
            "pairs": report.pairs,
            "balance": report.balance.after,
            "heldout_agreement": report.heldout_agreement,
        },
    )
    export = ExportSpec(min_variant_agreement=info.min_variant_agreement)
    assert info.out is not None
    write_bundle(student.eval(), tokenizer, spec, info.out, parity_texts, export)
    return str(info.out)
