"""`python -m training probe ...`: fit the probe, score it, or write its probabilities."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _fit(args: argparse.Namespace) -> int:
    from training.probe.config import ProbeConfig
    from training.probe.fit import fit

    report = fit(ProbeConfig.from_file(args.config, out=args.out))
    print(json.dumps({k: report[k] for k in ("train_rows", "train_prior", "chosen")}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.data import read_table
    from training.evaluate.records import emit
    from training.evaluate.run import score_logits
    from training.probe.fit import Probe

    probe = Probe(args.run)
    reports = []
    for path in args.data:
        table = read_table(path, args.text_column, args.label_column)
        tokens = probe.encoder.tokenizer([probe.encoder.prefix + t for t in table.texts])
        lengths = [len(x) for x in tokens["input_ids"]]
        result = score_logits(
            table, probe.labels, probe.logits(table.texts), lengths, probe.encoder.max_length
        )
        reports.append(result)
    emit(reports, str(args.run), "probe", args.report)
    return 0


def register(commands: Any) -> None:
    probe = commands.add_parser("probe", help="linear probe on a frozen multilingual encoder")
    sub = probe.add_subparsers(dest="probe_command", required=True)
    fit = sub.add_parser("fit", help="train the probe on labelled English (cached features)")
    fit.add_argument("config", type=Path, help="YAML/JSON probe configuration")
    fit.add_argument("--out", type=Path, help="run directory (overrides the config)")
    fit.set_defaults(func=_fit)
    ev = sub.add_parser("evaluate", help="accuracy and macro-F1 per labelled file")
    ev.add_argument("run", type=Path, help="a `probe fit` directory")
    ev.add_argument("--data", type=Path, nargs="+", required=True)
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
    ev.add_argument("--report", type=Path)
    ev.set_defaults(func=_evaluate)
