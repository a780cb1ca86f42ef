"""Offline speed of several bundles on the same texts, in one run: tokenizer + onnxruntime
in-process (the served variant: int8 on a CPU), batches of 1 and of 32, and each bundle's
ratio to the first one named.

    python benchmarks/bundle_speed.py models/vi-sentiment runs/bundles/vi-sentiment-adapt-1 \
        --data ../shared/data --json reports/kda/vi-adapt/speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from benchmarks.peers import mixed_texts  # noqa: E402
from benchmarks.serving import offline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    texts = mixed_texts(args.data, args.texts)
    settings = Settings(providers=["cpu"])
    rows: dict[str, dict[str, Any]] = {}
    for bundle in args.bundles:
        rows[str(bundle)] = {}
        size = (
            (bundle / "model.int8.onnx").stat().st_size
            if (bundle / "model.int8.onnx").is_file()
            else None
        )
        rows[str(bundle)]["int8_mb"] = round(size / 1e6, 1) if size else None
        for batch in args.batch_sizes:
            result = offline(bundle, texts, settings, args.seconds, batch)
            rows[str(bundle)][f"b{batch}"] = result
    first = rows[str(args.bundles[0])]
    print(f"{len(texts)} texts, {args.seconds:g} s per measurement")
    print(
        f"{'bundle':<48} {'int8 MB':>8} "
        + " ".join(f"{'b' + str(b) + ' texts/s':>14} {'ratio':>6}" for b in args.batch_sizes)
    )
    for name, row in rows.items():
        cells = []
        for b in args.batch_sizes:
            speed = row[f"b{b}"]["texts_per_s"]
            row[f"b{b}_ratio"] = speed / first[f"b{b}"]["texts_per_s"]
            cells.append(f"{speed:>14.1f} {row[f'b{b}_ratio']:>6.2f}")
        print(f"{name:<48} {row['int8_mb']!s:>8} " + " ".join(cells))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
