"""`python -m training vocab trim`: keep one language's pieces of a model's vocabulary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.options import TEXT_FILES, command, group
from training.summaries import emit


def _trim(args: argparse.Namespace) -> int:
    from training.data import read_corpus
    from training.vocab.trim import split_lines, trim_model

    lines = [line for spec in args.corpus for line in read_corpus(spec, args.limit)]
    corpus, heldout = split_lines(lines, args.heldout, args.seed)
    print(f"{len(corpus)} lines to count, {len(heldout)} held out", flush=True)
    emit(trim_model(args.model, args.out, corpus, heldout, args.size), args.report)
    return 0


def register(commands: Any) -> None:
    sub = group(commands, "vocab", "vocabulary trimming")
    trim = command(sub, "trim", _trim, "keep one language's pieces", ("--seed", "--report"))
    trim.add_argument("--model", type=Path, required=True, help="model dir with tokenizer.json")
    trim.add_argument("--corpus", **TEXT_FILES)
    trim.add_argument("--out", type=Path, required=True)
    trim.add_argument("--size", type=int, default=40_000, help="most frequent pieces to keep")
    trim.add_argument("--heldout", type=float, default=0.02, help="share kept for the report")
    trim.add_argument("--limit", type=int, help="first N lines of each corpus file")
