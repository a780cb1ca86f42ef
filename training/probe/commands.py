"""`python -m training probe ...`: fit the probe, score it, or write its probabilities."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.options import command, group


def _fit(args: argparse.Namespace) -> int:
    from training.probe.config import ProbeConfig
    from training.probe.fit import fit

    report = fit(ProbeConfig.from_command(args))
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
    sub = group(commands, "probe", "linear probe on a frozen multilingual encoder")
    command(
        sub,
        "fit",
        _fit,
        "train the probe on labelled English (cached features)",
        ("config", "--out"),
    )
    ev = command(
        sub,
        "evaluate",
        _evaluate,
        "accuracy and macro-F1 per labelled file",
        ("--data", "--report"),
    )
    ev.add_argument("run", type=Path, help="a `probe fit` directory")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
