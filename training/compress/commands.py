"""`python -m training compress run|tasks|table`: the compression pipeline, heads for a
language's other tasks on its served student, and a run's results table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.compress import STAGES
from training.options import command, group, summary
from training.summaries import emit


def _run(args: argparse.Namespace) -> int:
    from training.compress.config import CompressConfig
    from training.compress.pipeline import Pipeline
    from training.compress.reports import HeadsReport

    config = CompressConfig.from_command(args)
    reports = Pipeline(config).run(args.stage)
    printed: dict[str, Any] = {}
    for stage, report in reports.items():
        keep = ("parameters", "size_bytes", "seconds", "sources", "bundle")
        printed[stage] = summary(report.to_json(), keep)
        if isinstance(report, HeadsReport):
            printed[stage] = {
                name: {"accuracy": r.test_accuracy.to_json(), "macro_f1": r.test_macro_f1.to_json()}
                for name, r in report.results.items()
            }
    emit(printed)
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from training.compress.tasks import TasksConfig, run_tasks

    paths = {key: getattr(args, key) for key in ("student", "out", "sources", "models")}
    config = TasksConfig.from_file(args.config, **paths)
    emit(run_tasks(config, args.task, args.baseline))
    return 0


def _table(args: argparse.Namespace) -> int:
    from training.compress.table import markdown, write

    if not (args.run / "compress-config.json").is_file():
        raise ValueError(f"{args.run} is not a compression run (no compress-config.json)")
    if args.speed and not args.speed.is_file():
        raise ValueError(f"speed report {args.speed} not found")
    print(markdown(write(args.run, args.speed, args.out)), end="")
    return 0


def register(commands: Any) -> None:
    sub = group(commands, "compress", "compress a multilingual encoder for one language")
    run = command(
        sub, "run", _run, "every stage, skipping finished ones", ("config", "--out", "--threads")
    )
    run.add_argument(
        "--stage",
        action="append",
        choices=STAGES,
        help="run only this stage (repeatable); default: all, in order",
    )
    tasks = command(
        sub,
        "tasks",
        _tasks,
        "sentiment / POS / NER heads on a language's served student",
        ("config",),
    )
    tasks.add_argument("--task", action="append", help="only this task (repeatable)")
    tasks.add_argument("--student", type=Path, help="student sources (overrides config)")
    tasks.add_argument("--out", type=Path, help="head runs and reports (overrides config)")
    tasks.add_argument("--sources", type=Path, help="where heads are packed (overrides config)")
    tasks.add_argument("--models", type=Path, help="where bundles are built (overrides config)")
    tasks.add_argument(
        "--baseline",
        action="store_true",
        help="the same heads on the uncompressed baseline (reports under <out>/baseline)",
    )
    table = command(sub, "table", _table, "one language's results table (Markdown + JSON)")
    table.add_argument("run", type=Path, help="a compression run directory")
    table.add_argument("--speed", type=Path, help="benchmarks/compress_speed.py's report")
    table.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
