"""`python -m training kda adapt` and `kda pack-adapted`: the in-domain adaptation's commands
(training/kda/adapt.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


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


def register(kda_commands: Any) -> None:
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
