"""How to cut a flush of texts into model calls: one padded call, one call per text, the ratio
rule this service used before (a new run when a text is twice the run's shortest, runs of at
least 4), or the cost-based cut it uses now (`app.batching.plan_runs`: the fewest padded
tokens plus `RUN_OVERHEAD_TOKENS` per call). Offline and single-threaded (one inference
worker's view), the same flushes of the same texts for every rule, at several flush sizes;
ratios are against one padded call, measured in the same run.

    python benchmarks/run_planning.py --bundle models/vi-sentiment --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.batching import pad, plan_runs  # noqa: E402
from app.bundle import load_bundle  # noqa: E402
from app.runtime import OrtModel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tokenization import Encoded, TextEncoder  # noqa: E402
from benchmarks.peers import mixed_texts  # noqa: E402

Planner = Callable[[Sequence[int]], list[list[int]]]


def ratio_rule(
    lengths: Sequence[int], split_ratio: float = 2.0, min_run: int = 4
) -> list[list[int]]:
    """The rule before the cost-based cut, kept here as a baseline."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    runs: list[list[int]] = []
    for index in order:
        if runs and (
            len(runs[-1]) < min_run or lengths[index] <= split_ratio * lengths[runs[-1][0]]
        ):
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def measure(
    model: OrtModel, pad_id: int, flushes: list[list[Encoded]], plan: Planner, seconds: float
) -> tuple[float, float]:
    """Texts/s over whole passes through the flushes (at least `seconds`), and the share of
    computed tokens that are real."""
    texts = real = padded = 0
    began = time.perf_counter()
    while not texts or time.perf_counter() - began < seconds:
        for flush in flushes:
            for run in plan([len(e.ids) for e in flush]):
                ids, mask = pad([flush[i].ids for i in run], pad_id)
                model.infer(ids, mask)
                real += int(mask.sum())
                padded += ids.size
            texts += len(flush)
    return texts / (time.perf_counter() - began), real / padded


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 32])
    parser.add_argument("--texts", type=int, default=256, help="texts per pass, per size")
    parser.add_argument("--seconds", type=float, default=4.0, help="per rule and size")
    parser.add_argument(
        "--overheads",
        type=int,
        nargs="+",
        help="cost-based rows for these tokens per call (default: the service's own setting)",
    )
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    manifest = bundle.manifest
    encoder = TextEncoder.for_bundle(bundle)
    settings = Settings(providers=["cpu"], intra_op_threads=1)
    model = OrtModel(bundle, settings)
    encoded = encoder.encode(mixed_texts(args.data, args.texts), truncate=True)
    rules: dict[str, Planner] = {
        "one padded call": lambda lengths: [list(range(len(lengths)))],
        "one call per text": lambda lengths: [[i] for i in range(len(lengths))],
        "ratio rule (before)": ratio_rule,
    }
    for overhead in args.overheads or [model.run_overhead_tokens(settings)]:
        rules[f"cost-based, {overhead} tokens/call"] = partial(plan_runs, overhead_tokens=overhead)
    lengths = sorted(len(e.ids) for e in encoded)
    print(
        f"{manifest.name} ({model.info.variant}), {len(encoded)} texts of "
        f"{lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}), one thread"
    )
    for size in args.sizes:
        flushes = [encoded[i : i + size] for i in range(0, len(encoded) - size + 1, size)]
        measure(model, encoder.pad_id, flushes[:4], rules["one padded call"], 0)  # warm-up
        baseline = None
        for name, plan in rules.items():
            rate, efficiency = measure(model, encoder.pad_id, flushes, plan, args.seconds)
            baseline = baseline or rate
            print(
                f"flush of {size:3d}  {name:<28} {rate:7.1f} texts/s  x{rate / baseline:.2f}  "
                f"real tokens {100 * efficiency:3.0f}%"
            )


if __name__ == "__main__":
    main()
