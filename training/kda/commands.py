"""`python -m training kda run|pack|adapt|pack-adapted`: KDA's commands (the distillation,
committed sources of its best student, the in-domain adaptation and its sources)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.kda import VARIANTS
from training.summaries import emit


def _run(args: argparse.Namespace) -> int:
    from training.kda.config import KDAConfig
    from training.kda.pipeline import run

    overrides = {
        "out": args.out,
        "variant": args.variant,
        "bundle.out": args.bundle_out,
        "threads": args.threads,
        "feature_weight": args.feature_weight,
    }
    config = KDAConfig.from_file(args.config, **overrides)
    report = run(config, export=not args.no_export, train=not args.no_train)
    keys = (
        "pairs",
        "train_pairs",
        "heldout_pairs",
        "epochs",
        "stopped_early",
        "best_heldout_loss",
        "heldout_agreement",
        "trainable_parameters",
        "seconds",
        "bundle",
    )
    emit({k: report[k] for k in keys if k in report})
    return 0


def _pack(args: argparse.Namespace) -> int:
    from training.data import read_corpus
    from training.evaluate.records import records
    from training.kda.package import pack

    texts = read_corpus(args.reference)[: args.reference_count]
    evaluation = records(args.evaluation) if args.evaluation else None
    emit(pack(args.run, args.out, args.base, texts, evaluation, args.bundle_from))
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from training.kda.adapt import AdaptConfig, run

    overrides = {"out": args.out, "threads": args.threads, "sources": args.sources}
    overrides["epochs"] = args.epochs
    config = AdaptConfig.from_file(args.config, **overrides, labels=args.labels)
    report = run(config)
    keys = (
        "texts",
        "train",
        "heldout",
        "vocabulary",
        "steps",
        "best_heldout_loss",
        "prior",
        "seconds",
    )
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    return 0


def _pack_adapted(args: argparse.Namespace) -> int:
    from training.data import read_corpus
    from training.evaluate.records import records
    from training.kda.package import pack_adapted

    texts = read_corpus(args.reference)[: args.reference_count]
    evaluation = records(args.evaluation) if args.evaluation else None
    print(json.dumps(pack_adapted(args.run, args.out, texts, evaluation), indent=2))
    return 0


def register(commands: Any) -> None:
    kda = commands.add_parser("kda", help="KDA: pseudo-label, balance, train, export")
    kda_commands = kda.add_subparsers(dest="kda_command", required=True)
    kda_run = kda_commands.add_parser("run", help="every step, resuming finished ones")
    kda_run.add_argument("config", type=Path, help="YAML/JSON KDA configuration")
    kda_run.add_argument("--out", type=Path, help="run directory (overrides the config)")
    kda_run.add_argument("--variant", choices=VARIANTS, help="adapter (overrides the config)")
    kda_run.add_argument("--bundle-out", type=Path, help="bundle path (overrides the config)")
    kda_run.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    kda_run.add_argument(
        "--feature-weight",
        type=float,
        help="weight of the sentence-feature loss (overrides the config; 0: the paper's loss)",
    )
    kda_run.add_argument("--no-export", action="store_true", help="stop after training")
    kda_run.add_argument(
        "--no-train",
        action="store_true",
        help="do not train further: export the best adapter an interrupted run has so far",
    )
    kda_run.set_defaults(func=_run)
    kda_pack = kda_commands.add_parser(
        "pack", help="write a run's best student as committed sources (fp16, kept pieces)"
    )
    kda_pack.add_argument("run", type=Path, help="a `kda run` directory")
    kda_pack.add_argument("--out", type=Path, required=True, help="e.g. models/sources/<name>")
    kda_pack.add_argument("--base", default="e5-small", help="the model the target was cut from")
    kda_pack.add_argument(
        "--reference", required=True, help="texts whose predictions a rebuild must reproduce"
    )
    kda_pack.add_argument("--reference-count", type=int, default=200)
    kda_pack.add_argument(
        "--bundle-from", type=Path, help="take the bundle settings from this KDA config instead"
    )
    kda_pack.add_argument(
        "--evaluation", type=Path, nargs="*", help="`evaluate` reports to put in the manifest"
    )
    kda_pack.set_defaults(func=_pack)
    adapt = kda_commands.add_parser(
        "adapt", help="keep training a packed student on unlabeled in-domain text (resumable)"
    )
    adapt.add_argument("config", type=Path, help="YAML/JSON adaptation configuration")
    adapt.add_argument("--out", type=Path, help="run directory (overrides the config)")
    adapt.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    adapt.add_argument("--sources", type=Path, help="student sources (overrides the config)")
    adapt.add_argument("--labels", type=Path, help="ensemble labels (overrides the config)")
    adapt.add_argument("--epochs", type=int, help="epochs (overrides the config)")
    adapt.set_defaults(func=_adapt)
    pack = kda_commands.add_parser(
        "pack-adapted", help="write an adaptation run's student as committed sources"
    )
    pack.add_argument("run", type=Path, help="a `kda adapt` directory")
    pack.add_argument("--out", type=Path, required=True, help="e.g. models/sources/<name>")
    pack.add_argument(
        "--reference", required=True, help="texts whose predictions a rebuild must reproduce"
    )
    pack.add_argument("--reference-count", type=int, default=200)
    pack.add_argument(
        "--evaluation", type=Path, nargs="*", help="`evaluate` reports to put in the manifest"
    )
    pack.set_defaults(func=_pack_adapted)
