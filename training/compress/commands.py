"""`python -m training compress run|tasks|table`: the compression pipeline, heads for a
language's other tasks on its served student, and a run's results table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.compress import STAGES
from training.summaries import emit


def _run(args: argparse.Namespace) -> int:
    from training.compress.config import CompressConfig
    from training.compress.pipeline import Pipeline

    config = CompressConfig.from_file(args.config, out=args.out, threads=args.threads)
    reports = Pipeline(config).run(args.stage)
    summary = {}
    for stage, report in reports.items():
        keep = ("parameters", "size_bytes", "seconds", "sources", "bundle")
        summary[stage] = {k: report[k] for k in keep if k in report}
        if stage == "heads":
            summary[stage] = {
                name: {"accuracy": r["test_accuracy"], "macro_f1": r["test_macro_f1"]}
                for name, r in report["results"].items()
            }
    emit(summary)
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from training.compress.tasks import TasksConfig, run_tasks

    config = TasksConfig.from_file(args.config, student=args.student)
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
    comp = commands.add_parser("compress", help="compress a multilingual encoder for one language")
    comp_commands = comp.add_subparsers(dest="compress_command", required=True)
    comp_run = comp_commands.add_parser("run", help="every stage, skipping finished ones")
    comp_run.add_argument("config", type=Path, help="YAML/JSON compression configuration")
    comp_run.add_argument(
        "--stage",
        action="append",
        choices=STAGES,
        help="run only this stage (repeatable); default: all, in order",
    )
    comp_run.add_argument("--out", type=Path, help="run directory (overrides the config)")
    comp_run.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    comp_run.set_defaults(func=_run)
    comp_tasks = comp_commands.add_parser(
        "tasks", help="sentiment / POS / NER heads on a language's served student, as sources"
    )
    comp_tasks.add_argument("config", type=Path, help="YAML/JSON tasks configuration")
    comp_tasks.add_argument("--task", action="append", help="only this task (repeatable)")
    comp_tasks.add_argument("--student", type=Path, help="student sources (overrides config)")
    comp_tasks.add_argument(
        "--baseline",
        action="store_true",
        help="the same heads on the uncompressed baseline (reports under <out>/baseline)",
    )
    comp_tasks.set_defaults(func=_tasks)
    comp_table = comp_commands.add_parser(
        "table", help="one language's results table from a run's reports (Markdown + JSON)"
    )
    comp_table.add_argument("run", type=Path, help="a compression run directory")
    comp_table.add_argument("--speed", type=Path, help="benchmarks/compress_speed.py's report")
    comp_table.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    comp_table.set_defaults(func=_table)
