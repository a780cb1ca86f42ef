"""How to spend a CPU's cores on inference: one batch using every core, or one
single-threaded batch per core? Offline (tokenizer + onnxruntime, no HTTP), same bundle and
texts for each configuration; ratios are against the first row (onnxruntime's usual setup).

    python benchmarks/cpu_threads.py --bundle runs/bench-minilm --data ../shared/data/mono/vi.txt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.batching import pad, plan_runs  # noqa: E402
from app.bundle import load_bundle  # noqa: E402
from app.runtime import OrtModel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tokenization import TextEncoder  # noqa: E402
from benchmarks.serving import load_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=120)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    texts = load_texts(args.data, 2000)
    bundle = load_bundle(args.bundle)
    manifest = bundle.manifest
    encoder = TextEncoder.for_bundle(bundle)

    def one_batch(model: OrtModel, start: int) -> None:
        chunk = [texts[(start + i) % len(texts)] for i in range(args.batch_size)]
        encoded = encoder.encode(chunk, truncate=True)
        for run in plan_runs([len(e.ids) for e in encoded], model.run_overhead_tokens(Settings())):
            ids, mask = pad([encoded[i].ids for i in run], encoder.pad_id)
            model.infer(ids, mask)

    configs = [  # (intra-op threads, parallel batches, spinning)
        (cores, 1, True),
        (cores, 1, False),
        (1, cores, False),
        (1, cores, True),
    ]
    baseline = None
    print(f"{manifest.name}, batches of {args.batch_size}, {cores} CPUs")
    for intra, streams, spin in configs:
        model = OrtModel(
            bundle, Settings(intra_op_threads=intra, allow_spinning=spin, providers=["cpu"])
        )
        for i in range(3):
            one_batch(model, i * args.batch_size)
        began, cpu0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(streams) as pool:
            starts = [i * args.batch_size for i in range(args.batches)]
            list(pool.map(one_batch, [model] * args.batches, starts))
        wall = time.perf_counter() - began
        rate = args.batches * args.batch_size / wall
        baseline = baseline or rate
        print(
            f"intra-op threads {intra}, parallel batches {streams}, spinning {spin!s:<5}: "
            f"{rate:7.1f} texts/s  x{rate / baseline:.2f}  "
            f"CPU {100 * (time.process_time() - cpu0) / wall:.0f}%  ({model.info.variant})"
        )


if __name__ == "__main__":
    main()
