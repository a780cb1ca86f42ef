"""`python -m training <command>`: one entry point for every offline step. Each method and
tool registers its own sub-commands (its `commands.py`, arguments only: the work is imported
when a command runs, so `build --if-changed` stays quick); this module only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

# in the order `--help` lists them
COMMANDS = (
    "training.export.commands",  # build, demo-bundle
    "training.weights.commands",  # import
    "training.finetune.commands",
    "training.evaluate.commands",
    "training.kda.commands",
    "training.compress.commands",
    "training.vocab.commands",
    "training.probe.commands",
    "training.ensemble.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if "torch" in sys.modules:  # a command that trained: its processes part cleanly
            from training.loop import leave_process_group

            leave_process_group()
