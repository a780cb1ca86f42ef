"""`python -m training ensemble label`: soft labels for unlabeled text (see label.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.options import TEXT_FILES, command, group
from training.soft_labels import EnsembleReport


def _label(args: argparse.Namespace) -> int:
    from training.data import normalise, read_corpus
    from training.ensemble.label import label

    texts: list[str] = []
    seen: set[str] = set()
    for spec in args.texts:
        for text in read_corpus(spec):
            text = normalise(text, False)
            if text not in seen:
                seen.add(text)
                texts.append(text)
    print(f"{len(texts)} distinct texts from {len(args.texts)} files", flush=True)
    report = label(
        args.members, texts, args.out, args.heldout, args.seed, args.variant, args.target_prior
    )
    print(report.model_dump_json(indent=2, exclude={"members"}))
    return 0


def _heldout(args: argparse.Namespace) -> int:
    from training.ensemble.label import heldout_fit

    rows = {str(model): heldout_fit(args.labels, model, args.variant) for model in args.models}
    for model, row in rows.items():
        print(
            f"{model:<48} cross-entropy={row['heldout_cross_entropy']:.5f} "
            f"agreement={row['heldout_agreement']:.4f}"
        )
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"labels": str(args.labels), "models": rows}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.data import read_table
    from training.ensemble.label import ensemble_probabilities
    from training.evaluate.records import emit
    from training.evaluate.run import score_logits

    labels = EnsembleReport.read(args.labels).labels
    reports = []
    for path in args.data:
        table = read_table(path)
        probs = ensemble_probabilities(args.labels, table.texts, args.variant)
        result = score_logits(table, labels, np.log(probs), [0] * len(table.texts), 0)
        for key in ("tokens_per_text", "truncated_share", "max_length"):
            result.pop(key)
        reports.append(result)
    emit(reports, f"ensemble {args.labels}", "ensemble", args.report)
    return 0


def register(commands: Any) -> None:
    sub = group(commands, "ensemble", "soft labels for unlabeled text")
    lab = command(
        sub,
        "label",
        _label,
        "prior-corrected ensemble probabilities (no labels read)",
        ("--variant", "--seed"),
    )
    lab.add_argument(
        "--members",
        type=Path,
        nargs="+",
        required=True,
        help="bundles (their training prior from the manifest) or probe runs",
    )
    lab.add_argument("--texts", **TEXT_FILES | {"help": "unlabeled " + TEXT_FILES["help"]})
    lab.add_argument("--out", type=Path, required=True)
    lab.add_argument("--heldout", type=float, default=0.05, help="share kept for early stopping")
    lab.add_argument(
        "--target-prior",
        choices=("uniform", "em"),
        default="uniform",
        help="correct each member to equal classes (default) or to EM's estimate on the texts",
    )
    labels: dict[str, Any] = {
        "type": Path,
        "required": True,
        "help": "an `ensemble label` directory",
    }
    held = command(
        sub,
        "heldout",
        _heldout,
        "each model's fit to the ensemble on the held-out slice",
        ("--variant", "--report"),
    )
    held.add_argument("--labels", **labels)
    held.add_argument("--models", type=Path, nargs="+", required=True, help="bundles or probes")
    ev = command(
        sub,
        "evaluate",
        _evaluate,
        "score the ensemble itself on labelled files",
        ("--data", "--variant", "--report"),
    )
    ev.add_argument("--labels", **labels)
