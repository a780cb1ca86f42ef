"""Command-line options that several commands take, declared once so that `--out`,
`--threads` or `--report` mean the same everywhere, and the two calls every command's
registration makes (a group of sub-commands, a sub-command with its handler)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]

# texts to read: `training.data.read_corpus`'s specs
TEXT_FILES: dict[str, Any] = {
    "nargs": "+",
    "required": True,
    "help": "text files (a line each) or TABLE:COLUMN of a CSV/TSV",
}

SHARED: dict[str, dict[str, Any]] = {
    "config": {"type": Path, "help": "YAML/JSON configuration"},
    "--out": {"type": Path, "help": "run directory (overrides the config)"},
    "--threads": {"type": int, "help": "CPU threads (overrides the config)"},
    "--report": {"type": Path, "help": "also write the JSON report here"},
    "--variant": {"default": "fp32", "help": "bundle variant: fp32, fp16 or int8"},
    "--data": {"type": Path, "nargs": "+", "required": True, "help": "labelled CSV/TSV files"},
    "--reference": {
        "required": True,
        "help": "texts whose predictions a rebuild must reproduce",
    },
    "--reference-count": {"type": int, "default": 200},
    "--seed": {"type": int, "default": 13, "help": "seed of the held-out split"},
    "--evaluation": {
        "type": Path,
        "nargs": "*",
        "help": "`evaluate` reports to put in the manifest",
    },
}


def group(commands: Any, name: str, help: str) -> Any:
    """A command with sub-commands of its own (`python -m training NAME ...`)."""
    parser = commands.add_parser(name, help=help)
    return parser.add_subparsers(dest=f"{name}_command", required=True)


def command(
    commands: Any, name: str, handler: Handler, help: str, shared: Iterable[str] = ()
) -> argparse.ArgumentParser:
    """A sub-command that runs `handler`, with the `shared` options (keys of SHARED)."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
    for option in shared:
        parser.add_argument(option, **SHARED[option])
    parser.set_defaults(func=handler)
    return parser


def summary(report: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The `keys` a report has, in that order: what a command prints of a long report."""
    return {key: report[key] for key in keys if key in report}
