"""Serving benchmark: the service against the limit of its own stack, in one run.

Three measurements on the same bundle and texts:
  offline    tokenizer + onnxruntime in-process at the service's batch size and with its
             parallel batches (no HTTP): the most this stack can do on this machine;
  offline-b1 the same with batches of one text: what batching can at most add;
  service    `python -m app` under N concurrent loopback clients, one text per request;
  unbatched  the same service with SMALLGLOT_MAX_BATCH_SIZE=1.
Prints texts/s and p50/p99 latency for each, then service/offline and service/unbatched.

    python benchmarks/serving.py --bundle runs/bench-minilm --data ../shared/data/mono/vi.txt
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.batching import pad, plan_runs  # noqa: E402
from app.bundle import load_bundle  # noqa: E402
from app.runtime import OrtModel  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tokenization import TextEncoder  # noqa: E402

FALLBACK_TEXTS = [
    "Sản phẩm rất tốt, giao hàng nhanh, đóng gói cẩn thận.",
    "Phục vụ quá chậm, tôi sẽ không quay lại quán này nữa.",
    "Giáo viên giảng bài dễ hiểu và rất nhiệt tình với sinh viên.",
    "Chất lượng bình thường so với giá tiền.",
]


def load_texts(path: Path | None, count: int) -> list[str]:
    if path is None:
        return (FALLBACK_TEXTS * (count // len(FALLBACK_TEXTS) + 1))[:count]
    with path.open(encoding="utf-8") as handle:
        lines = [line.strip() for line, _ in zip(handle, range(count), strict=False)]
    return [line for line in lines if line]


def percentile_ms(values: list[float], q: float) -> float:
    return 1000 * float(np.quantile(values, q)) if values else float("nan")


def offline(
    bundle_dir: Path, texts: list[str], settings: Settings, seconds: float, batch_size: int
) -> dict:
    """Tokenize + pad + infer in-process, with as many parallel batches as the service runs."""
    bundle = load_bundle(bundle_dir)
    encoder = TextEncoder.for_bundle(bundle)
    model = OrtModel(bundle, settings)
    workers = settings.inference_workers or model.default_workers()
    overhead = model.run_overhead_tokens(settings)
    counter = itertools.count()

    def one_batch() -> float:
        start = next(counter) * batch_size
        chunk = [texts[(start + i) % len(texts)] for i in range(batch_size)]
        began = time.perf_counter()
        encoded = encoder.encode(chunk, truncate=True)
        lengths = [len(e.ids) for e in encoded]
        for run in plan_runs(lengths, overhead):
            ids, mask = pad([encoded[i].ids for i in run], encoder.pad_id)
            model.infer(ids, mask)
        return time.perf_counter() - began

    def stream(until: float) -> list[float]:
        latencies = []
        while time.perf_counter() < until:
            latencies.append(one_batch())
        return latencies

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(stream, [time.perf_counter() + 1.0] * workers))  # warm-up
        began = time.perf_counter()
        latencies = [x for part in pool.map(stream, [began + seconds] * workers) for x in part]
        wall = time.perf_counter() - began
    return {
        "texts_per_s": len(latencies) * batch_size / wall,
        "p50_ms": percentile_ms(latencies, 0.5),
        "p99_ms": percentile_ms(latencies, 0.99),
        "provider": model.info.provider,
        "variant": model.info.variant,
        "workers": workers,
        "batch_size": batch_size,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service(
    bundle_dir: Path, texts_file: Path, env_overrides: dict[str, str], args: argparse.Namespace
) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "SMALLGLOT_MODELS_DIR": str(bundle_dir.parent),
        "SMALLGLOT_MODELS": bundle_dir.name,
        "SMALLGLOT_SENTIMENT_MODEL": bundle_dir.name,
        "SMALLGLOT_LOG_LEVEL": "warning",
        **env_overrides,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log = server.stderr.read() if server.stderr else ""
                raise RuntimeError(f"service did not start: {log}")
            time.sleep(0.3)
        info = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["models"][0]

        def load(seconds: float) -> dict:
            out = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "loadgen.py"),
                    "--port",
                    str(port),
                    "--texts",
                    str(texts_file),
                    "--concurrency",
                    str(args.concurrency),
                    "--seconds",
                    str(seconds),
                    "--texts-per-request",
                    str(args.texts_per_request),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            return dict(json.loads(out.stdout))

        load(args.warmup)
        result = load(args.seconds)
        result.update(provider=info["provider"], variant=info["variant"])
        return result
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="one text per line (default: built-in samples)")
    parser.add_argument("--texts", type=int, default=2000, help="texts to read from --data")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--providers", default="cuda,cpu")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(
            f"error: no bundle at {args.bundle}; build one with\n  python -m training "
            f"demo-bundle --out {args.bundle} --preset minilm --corpus FILE"
        )
    texts = load_texts(args.data, args.texts)
    knobs = {
        "SMALLGLOT_MAX_BATCH_SIZE": str(args.max_batch_size),
        "SMALLGLOT_MAX_WAIT_MS": str(args.max_wait_ms),
        "SMALLGLOT_PROVIDERS": args.providers,
        "SMALLGLOT_MAX_QUEUE_TEXTS": str(max(2048, 4 * args.concurrency)),
    }
    settings = Settings(max_batch_size=args.max_batch_size, providers=args.providers.split(","))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
        texts_file = Path(f.name)
    try:
        results = {
            "offline": offline(args.bundle, texts, settings, args.seconds, args.max_batch_size),
            "offline-b1": offline(args.bundle, texts, settings, args.seconds, 1),
            "service": service(args.bundle, texts_file, knobs, args),
            "unbatched": service(
                args.bundle, texts_file, {**knobs, "SMALLGLOT_MAX_BATCH_SIZE": "1"}, args
            ),
        }
    finally:
        texts_file.unlink()
    ratios = {
        "offline/offline-b1 (most batching can give)": results["offline"]["texts_per_s"]
        / results["offline-b1"]["texts_per_s"],
        "service/offline": results["service"]["texts_per_s"] / results["offline"]["texts_per_s"],
        "service/unbatched": results["service"]["texts_per_s"]
        / results["unbatched"]["texts_per_s"],
    }
    print(
        f"bundle {args.bundle.name}, {len(texts)} texts, batch {args.max_batch_size}, "
        f"wait {args.max_wait_ms} ms, {args.concurrency} clients x {args.texts_per_request} "
        f"texts/request, {args.seconds:g} s each, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'':<10} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8}  provider / variant"
        "  (offline latencies are per batch)"
    )
    for name, r in results.items():
        errors = f"  errors: {r['errors']}" if r.get("errors") else ""
        print(
            f"{name:<10} {r['texts_per_s']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}  "
            f"{r['provider']} / {r['variant']}{errors}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
