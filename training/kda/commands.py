"""`python -m training kda run|pack|adapt|pack-adapted|teacher`: KDA's commands (the
distillation, committed sources of its best student, the in-domain adaptation and its sources,
the teacher those sources carry)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.kda import VARIANTS
from training.options import Handler, command, group, summary
from training.summaries import emit


def _run(args: argparse.Namespace) -> int:
    from training.kda.config import KDAConfig
    from training.kda.pipeline import run

    config = KDAConfig.from_command(args)
    report = run(config, export=not args.no_export, train=not args.no_train)
    counts = ("pairs", "train_pairs", "heldout_pairs", "epochs", "stopped_early")
    results = ("best_heldout_loss", "heldout_agreement", "trainable_parameters", "seconds")
    emit(summary(report.model_dump(mode="json", exclude_none=True), (*counts, *results, "bundle")))
    return 0


def _packing(args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]] | None]:
    """The reference texts and evaluation records a packing command was given."""
    from training.data import read_corpus
    from training.evaluate.records import records

    texts = read_corpus(args.reference)[: args.reference_count]
    return texts, records(args.evaluation) if args.evaluation else None


def _pack(args: argparse.Namespace) -> int:
    from training.kda.package import pack

    emit(pack(args.run, args.out, args.base, *_packing(args), args.bundle_from))
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from training.kda.adapt import AdaptConfig, run

    config = AdaptConfig.from_command(args)
    report = run(config)
    keys = ("texts", "train", "heldout", "vocabulary", "steps", "best_heldout_loss", "prior")
    emit(summary(report.model_dump(mode="json", exclude_none=True), (*keys, "seconds")))
    return 0


def _pack_adapted(args: argparse.Namespace) -> int:
    from training.kda.package import pack_adapted

    emit(pack_adapted(args.run, args.out, *_packing(args)))
    return 0


def _teacher(args: argparse.Namespace) -> int:
    from training.kda.package import restore_teacher

    emit(restore_teacher(args.sources, args.out, args.english))
    return 0


def register(commands: Any) -> None:
    sub = group(commands, "kda", "KDA: pseudo-label, balance, train, export")
    run = command(
        sub, "run", _run, "every step, resuming finished ones", ("config", "--out", "--threads")
    )
    run.add_argument("--variant", choices=VARIANTS, help="adapter (overrides the config)")
    run.add_argument(
        "--bundle-out", dest="bundle.out", type=Path, help="bundle path (overrides the config)"
    )
    run.add_argument(
        "--feature-weight",
        type=float,
        help="weight of the sentence-feature loss (overrides the config; 0: the paper's loss)",
    )
    run.add_argument("--no-export", action="store_true", help="stop after training")
    run.add_argument(
        "--no-train",
        action="store_true",
        help="do not train further: export the best adapter an interrupted run has so far",
    )
    pack = _packer(sub, "pack", _pack, "a run's best student as committed sources", "kda run")
    pack.add_argument("--base", default="e5-small", help="the model the target was cut from")
    pack.add_argument(
        "--bundle-from", type=Path, help="take the bundle settings from this KDA config instead"
    )
    adapt = command(
        sub,
        "adapt",
        _adapt,
        "keep training a packed student on unlabeled in-domain text",
        ("config", "--out", "--threads"),
    )
    adapt.add_argument("--sources", type=Path, help="student sources (overrides the config)")
    adapt.add_argument("--labels", type=Path, help="ensemble labels (overrides the config)")
    adapt.add_argument("--epochs", type=int, help="epochs (overrides the config)")
    adapt.add_argument(
        "--pairs", type=Path, help="a finished `kda run` whose training pairs are mixed in"
    )
    teacher = command(
        sub, "teacher", _teacher, "the teacher committed in a student's sources, as a model"
    )
    teacher.add_argument("sources", type=Path, help="KDA sources, e.g. models/sources/vi-sentiment")
    teacher.add_argument("--out", type=Path, required=True, help="model directory to write")
    teacher.add_argument(
        "--english",
        default="minilm",
        help="the model whose word table and tokenizer stand in for the dropped English table",
    )
    _packer(
        sub, "pack-adapted", _pack_adapted, "an adaptation run's student as sources", "kda adapt"
    )


def _packer(sub: Any, name: str, handler: Handler, help: str, run: str) -> Any:
    """A command that packs a `run` directory's student as committed sources (fp16, the
    pieces it keeps), with the texts whose predictions a rebuild must reproduce."""
    parser = command(sub, name, handler, help, ("--reference", "--reference-count", "--evaluation"))
    parser.add_argument("run", type=Path, help=f"a `{run}` directory")
    parser.add_argument("--out", type=Path, required=True, help="e.g. models/sources/<name>")
    return parser
