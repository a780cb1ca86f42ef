"""Write a served bundle (`models/<name>/`): ONNX variants, tokenizer, manifest with sha256.

The manifest follows app/manifest.schema.json; the bundle is assembled in a temporary
directory and moved into place only once parity has passed, so a failed export never leaves
a half-written bundle where the service would find it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerFast

from training.export.onnx import ExportSpec, export_onnx
from training.export.parity import ParityError, check_parity
from training.export.variants import to_fp16, to_int8
from training.weights.manifest import sha256

VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
LABEL_SCHEMES = ("tags", "iob2")  # token classification: one tag per word, or IOB2 entities


@dataclass
class BundleSpec:
    name: str
    version: str
    task: str
    language: str
    labels: list[str]
    max_length: int
    variants: tuple[str, ...] = ("fp32", "fp16", "int8")
    demo: bool = False
    # False: served only when a request names it (e.g. a tiny alternative of a language's model)
    default: bool = True
    label_scheme: str | None = None  # token classification only: one of LABEL_SCHEMES
    description: str = ""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if "fp32" not in self.variants:
            raise ValueError("every bundle needs the fp32 variant")
        unknown = set(self.variants) - set(VARIANT_FILES)
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANT_FILES)}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be at least two distinct names, got {self.labels}")
        tokens = self.task == "token-classification"
        if tokens and self.label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"a token-classification bundle needs label_scheme in {LABEL_SCHEMES}")
        if not tokens and self.label_scheme is not None:
            raise ValueError(f"label_scheme is for token classification, not {self.task!r}")


def check_manifest(manifest: dict[str, Any]) -> None:
    """A manifest the service would refuse is refused here, before anything is written: the
    schema (the bundle contract) is read as data from the service's package, not imported."""
    import jsonschema

    text = resources.files("app").joinpath("manifest.schema.json").read_text(encoding="utf-8")
    validator = jsonschema.Draft202012Validator(json.loads(text))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise ValueError(f"the manifest does not match the schema at {where}: {errors[0].message}")


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# MatMuls an int8 variant keeps in fp32 when quantizing all of them breaks its agreement gate:
# a head's bottleneck adapters, trained at a high rate on a few hundred labelled rows, are the
# weights that quantize worst (a 6 x 256 topic student: 0.875 label agreement with every MatMul
# in int8, 0.950 with its adapters in fp32, 1.2 MB more)
INT8_KEEP_FP32 = ("/adapter/",)


def _checked_parity(
    model: nn.Module,
    paths: dict[str, Path],
    sequences: list[list[int]],
    export: ExportSpec,
    pad_id: int,
) -> dict[str, Any]:
    """Every variant's parity report; an int8 variant that alone misses its agreement gate is
    quantized again with `INT8_KEEP_FP32` kept in fp32 and checked again (and says so in its
    report). Any other failure, or a second int8 one, raises ParityError."""
    try:
        reports = check_parity(model, paths, sequences, export, pad_id)
        return {variant: report.as_dict() for variant, report in reports.items()}
    except ParityError:
        if "int8" not in paths:
            raise
    others = {variant: path for variant, path in paths.items() if variant != "int8"}
    reports = check_parity(model, others, sequences, export, pad_id)
    to_int8(paths["fp32"], paths["int8"], keep_fp32=INT8_KEEP_FP32)
    reports |= check_parity(model, {"int8": paths["int8"]}, sequences, export, pad_id)
    parity: dict[str, dict[str, Any]] = {v: dict(reports[v].as_dict()) for v in paths}
    parity["int8"]["kept_fp32"] = list(INT8_KEEP_FP32)
    return parity


def write_bundle(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerFast,
    spec: BundleSpec,
    out_dir: Path,
    parity_texts: list[str],
    export: ExportSpec | None = None,
) -> dict[str, Any]:
    """Export, check parity, write the manifest; returns the manifest."""
    export = export or ExportSpec()
    if spec.task == "token-classification":
        export = replace(export, token_level=True)
    labels_out = model.config.num_labels  # type: ignore[union-attr]
    if labels_out != len(spec.labels):
        raise ValueError(f"model has {labels_out} logits but {len(spec.labels)} labels were given")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        staging = Path(tmp)
        paths = {v: staging / VARIANT_FILES[v] for v in spec.variants}
        export_onnx(model, paths["fp32"], export, vocab_size=len(tokenizer))
        if "fp16" in paths:
            to_fp16(paths["fp32"], paths["fp16"])
        if "int8" in paths:
            to_int8(paths["fp32"], paths["int8"])
        tokenizer.save_pretrained(str(staging / "tokenizer"))
        sequences = [
            tokenizer(text, truncation=True, max_length=spec.max_length)["input_ids"]
            for text in parity_texts
        ]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        parity = _checked_parity(model, paths, sequences, export, pad_id)
        files = {
            str(p.relative_to(staging)): sha256(p)
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        manifest: dict[str, Any] = {
            "schema_version": 1,
            "name": spec.name,
            "version": spec.version,
            "task": spec.task,
            "language": spec.language,
            "labels": spec.labels,
            "max_length": spec.max_length,
            "demo": spec.demo,
            "default": spec.default,
            **({"label_scheme": spec.label_scheme} if spec.label_scheme else {}),
            "description": spec.description,
            "preprocessing": spec.preprocessing,
            "inputs": list(export.input_names),
            "output": export.output_name,
            "variants": {v: VARIANT_FILES[v] for v in spec.variants},
            "tokenizer": "tokenizer",
            "provenance": {"commit": _commit(), **spec.provenance},
            "parity": parity,
            "evaluation": spec.evaluation,
            "files": files,
        }
        check_manifest(manifest)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
        out_dir.chmod(0o755)  # mkdtemp made it private; servers run as other users
        staging.mkdir()  # TemporaryDirectory cleans up the (now empty) path it created
    return manifest
