"""`python -m training build` (a bundle from committed sources, whatever method made them),
`python -m training rename` (sources moved to another name, the heads on them following) and
`python -m training demo-bundle` (a tiny untrained one so the service can start)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from training.summaries import emit


def _build(args: argparse.Namespace) -> int:
    from training.sources import builder, bundle_is_current, bundle_path

    out = args.out or bundle_path(args.source)
    if args.if_changed and not args.record and bundle_is_current(args.source, out):
        print(f"{out} is current with {args.source}")
        return 0
    build = builder(args.source)
    started = time.perf_counter()
    print(f"building {out} from {args.source} (one time) ...", flush=True)
    summary = build(args.source, out, record=args.record)
    emit(summary | {"seconds": round(time.perf_counter() - started, 1)})
    return 0


def _rename(args: argparse.Namespace) -> int:
    from training.sources import rename_sources

    default = {"yes": True, "no": False, None: None}[args.default]
    heads = rename_sources(args.source, args.name, default)
    moved = args.source.parent / args.name
    emit({"sources": str(moved), "heads": [str(h) for h in heads]})
    return 0


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
    summary = {
        "bundle": str(args.out),
        "name": manifest["name"],
        "variants": manifest["variants"],
        "parity": manifest["parity"],
        "size_bytes": size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0


def register(commands: Any) -> None:
    rebuild = commands.add_parser(
        "build", help="rebuild a bundle from committed sources (models/sources/<name>)"
    )
    rebuild.add_argument("source", type=Path)
    rebuild.add_argument("--out", type=Path, help="default: the bundle path the sources name")
    rebuild.add_argument(
        "--record", action="store_true", help="store the reference predictions (after packing)"
    )
    rebuild.add_argument(
        "--if-changed",
        action="store_true",
        help="skip when the bundle was built from these sources",
    )
    rebuild.set_defaults(func=_build)

    rename = commands.add_parser(
        "rename",
        help="move sources to another name (their bundle too) and point the heads on them there",
    )
    rename.add_argument("source", type=Path, help="e.g. models/sources/sw-topic")
    rename.add_argument("name", help="the new name, e.g. sw-topic-small")
    rename.add_argument(
        "--default",
        choices=["yes", "no"],
        help="whether the bundle answers for its language unnamed (default: as it was)",
    )
    rename.set_defaults(func=_rename)

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
