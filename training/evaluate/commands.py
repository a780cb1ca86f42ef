"""`python -m training evaluate`: accuracy and macro-F1 of a model or bundle per dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.options import command
from training.summaries import write_json


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate.predictors import load_predictor
    from training.evaluate.run import evaluate_file

    predictor = load_predictor(args.model, args.max_length, args.text_prefix, args.variant)
    label_map = (
        dict(pair.split("=", 1) for pair in args.label_map.split(",")) if args.label_map else None
    )
    reports = []
    for path in args.data:
        result = evaluate_file(
            predictor, path, args.text_column, args.label_column, label_map, args.binary
        )
        reports.append(result)
        print(
            f"{result['dataset']:<24} n={result['n']:<6} accuracy={result['accuracy']:.4f} "
            f"macro-F1={result['macro_f1']:.4f} tokens/text={result['tokens_per_text']['mean']}"
            f" truncated={result['truncated_share']:.2%}",
            flush=True,
        )
    if args.report:
        write_json(
            args.report, {"model": str(args.model), "variant": args.variant, "results": reports}
        )
        print(f"report: {args.report}")
    return 0


def register(commands: Any) -> None:
    ev = command(
        commands,
        "evaluate",
        _evaluate,
        "accuracy and macro-F1 per dataset",
        ("--data", "--variant", "--report"),
    )
    ev.add_argument("--model", type=Path, required=True, help="model directory or bundle")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
    ev.add_argument("--label-map", help="e.g. 0=negative,1=positive")
    ev.add_argument(
        "--binary",
        default="auto",
        choices=["auto", "drop-absent", "off"],
        help="auto: drop the logits of labels absent from a dataset",
    )
    ev.add_argument("--max-length", type=int, default=128, help="for model directories")
    ev.add_argument("--text-prefix", default="", help='e.g. "query: " for e5 models')
