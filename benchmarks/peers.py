"""This service against the stacks a user would deploy instead, on the same bundle, in one run.

Rows (each server in its own process on loopback, loaded by `loadgen.py`, its own process):
  offline    tokenizer + onnxruntime in-process at the service's batch settings: the limit;
  smallglot  `python -m app` (this service, default settings);
  naive      FastAPI, one onnxruntime call per request in its thread pool (peer_apps/naive.py);
  litserve   LitServe with request batching, a worker per core;
  ray        Ray Serve, `@serve.batch`, a replica per core;
  bentoml    BentoML adaptive batching, a worker per core.
Every peer wraps the same tokenizer and onnxruntime session settings (peer_apps/core.py). For
each concurrency and texts-per-request level: texts/s, p50/p99 latency, and the server's CPU
seconds per 1,000 texts (its whole process tree, from /proc); then this service's ratio to
every other row (a row with failed requests gets no ratio: its texts/s would count errors),
and the share of the machine's CPUs the load generator itself took (it runs beside the server).
A shared or virtual machine drifts by 10-20% within minutes, so the measurements interleave:
for each of `--rounds` rounds, the offline limit, then every peer in turn (the order rotating
per round), each on a freshly started server that is stopped after its levels (an idle server
in the background, Ray's above all, slows the others). A cell's figures are the median
round's; a ratio is the median of the ratios taken within each round.
Peers that are not installed (`pip install -e '.[bench]'`) are reported as skipped.
Not a row yet: infinity-emb, whose `classify` route and optimum (ONNX) engine would need the
bundle in the Hugging Face/optimum layout (config.json with the labels, model.onnx and the
tokenizer files in one directory), which no exporter here writes.

    python benchmarks/peers.py --bundle models/vi-sentiment --json reports/benchmarks/peers-cpu.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from benchmarks.serving import free_port, offline  # noqa: E402

PEERS = ("smallglot", "naive", "litserve", "ray", "bentoml")
NEEDS = {"litserve": "litserve", "ray": "ray", "bentoml": "bentoml"}


def mixed_texts(data: Path, count: int, seed: int = 13) -> list[str]:
    """A fixed mix of short and long Vietnamese texts: evaluation-style sentences and forum,
    review and social posts."""
    pool: list[str] = []
    for path in sorted((data / "vi-unlabeled").glob("*.txt")):
        with path.open(encoding="utf-8") as handle:
            pool += [line.strip() for line, _ in zip(handle, range(400), strict=False)]
    sentiment = data / "vi-sentiment" / "vsfc.csv"
    if sentiment.is_file():
        import csv

        with sentiment.open(encoding="utf-8", newline="") as handle:
            pool += [
                row["text"] for row, _ in zip(csv.DictReader(handle), range(400), strict=False)
            ]
    pool = [t for t in pool if t]
    if not pool:
        raise SystemExit(f"no texts under {data} (vi-unlabeled/, vi-sentiment/)")
    random.Random(seed).shuffle(pool)
    return (pool * (count // len(pool) + 1))[:count]


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and every descendant still alive (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, owner in parents.items():
            if owner == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0.0) for p in tree)


def start(peer: str, bundle: Path, port: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    per_batch = max(1, args.max_batch_size // args.texts_per_request)
    workers = str(args.workers)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    apps = ROOT / "benchmarks" / "peer_apps"
    if peer == "smallglot":
        env |= {
            "SMALLGLOT_MODELS_DIR": str(bundle.parent),
            "SMALLGLOT_MODELS": bundle.name,
            "SMALLGLOT_SENTIMENT_MODEL": bundle.name,
            "SMALLGLOT_LOG_LEVEL": "warning",
            "SMALLGLOT_PROVIDERS": "cpu",
            "SMALLGLOT_MAX_QUEUE_TEXTS": "8192",
        }
        command = [sys.executable, "-m", "app", "--port", str(port)]
    elif peer == "naive":
        command = [sys.executable, str(apps / "naive.py"), str(bundle), str(port)]
    elif peer == "litserve":
        command = [sys.executable, str(apps / "litserve_app.py"), str(bundle), str(port)]
        command += [str(per_batch), workers]
    elif peer == "ray":
        command = [sys.executable, str(apps / "ray_app.py"), str(bundle), str(port)]
        command += [str(per_batch), workers]
    else:
        env |= {"BENCH_BUNDLE": str(bundle), "BENCH_BATCH": str(args.max_batch_size)}
        env |= {"BENCH_WORKERS": workers}
        command = [sys.executable, "-m", "bentoml", "serve"]
        command += ["benchmarks.peer_apps.bentoml_app:Sentiment", "--port", str(port)]
        command += ["--host", "127.0.0.1"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_ready(server: subprocess.Popen[str], port: int, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.5)
    stderr = server.stderr.read()[-2000:] if server.stderr and server.poll() is not None else ""
    raise RuntimeError(f"server did not get ready on port {port}: {stderr}")


def stop(server: subprocess.Popen[str]) -> None:
    import signal

    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def load(
    port: int, texts_file: Path, concurrency: int, per: int, seconds: float, peer: str
) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--port", str(port)]
    command += ["--texts", str(texts_file), "--concurrency", str(concurrency)]
    command += ["--seconds", str(seconds), "--texts-per-request", str(per)]
    if peer == "bentoml":
        command.append("--always-list")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = dict(json.loads(out.stdout))
    # the load generator shares the machine's cores with the server: what it took is reported
    result["client_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def measure_level(
    peer: str,
    port: int,
    server: subprocess.Popen[str],
    texts_file: Path,
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    load(port, texts_file, concurrency, args.texts_per_request, args.warmup, peer)
    before = process_tree_cpu(server.pid)
    result = load(port, texts_file, concurrency, args.texts_per_request, args.seconds, peer)
    cpu = process_tree_cpu(server.pid) - before
    result["cpu_s_per_1000_texts"] = 1000 * cpu / max(result["texts"], 1)
    result["client_cpu_share"] = result["client_cpu_s"] / result["seconds"] / (os.cpu_count() or 1)
    return result


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median throughput (its latencies and CPU with it), all rounds kept."""
    ordered = sorted(rounds, key=lambda r: r["texts_per_s"])
    return {**ordered[(len(ordered) - 1) // 2], "rounds": rounds}


def measure_peer(
    peer: str, bundle: Path, texts_file: Path, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Every level on a freshly started server, which is stopped afterwards (an idle peer in
    the background, Ray's above all, would slow every other row)."""
    port = free_port()
    server = start(peer, bundle, port, args)
    rows: dict[str, dict[str, Any]] = {}
    try:
        wait_ready(server, port)
        for concurrency in args.concurrency:
            result = measure_level(peer, port, server, texts_file, concurrency, args)
            rows[str(concurrency)] = result
            print(
                f"  {peer:<10} c={concurrency:<4} {result['texts_per_s']:>8.1f} texts/s  "
                f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"cpu {result['cpu_s_per_1000_texts']:.2f} s/1k  "
                f"client {100 * result['client_cpu_share']:.0f}% of the CPUs  "
                f"errors {result['errors']}",
                flush=True,
            )
    finally:
        stop(server)
    return rows


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        raise SystemExit(f"error: no bundle at {args.bundle}")
    texts = mixed_texts(args.data, args.texts)
    settings = Settings(max_batch_size=args.max_batch_size, providers=["cpu"])
    single = offline(
        args.bundle, texts[:1] * 8, settings.model_copy(update={"inference_workers": 1}), 3.0, 1
    )
    print(f"one text alone, offline: {single['p50_ms']:.2f} ms", flush=True)
    results: dict[str, Any] = {"offline_one_text": single, "peers": {}}
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {}
    limits: list[dict[str, Any]] = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
        texts_file = Path(f.name)
    peers = []
    for peer in args.peers:
        module = NEEDS.get(peer)
        if module and importlib.util.find_spec(module) is None:
            results["peers"][peer] = {"skipped": f"{module} is not installed (.[bench])"}
            print(f"  {peer:<10} skipped: {module} is not installed", flush=True)
        else:
            peers.append(peer)
    try:
        for round_ in range(args.rounds):
            limits.append(offline(args.bundle, texts, settings, args.seconds, args.max_batch_size))
            print(
                f"round {round_ + 1}: offline limit {limits[-1]['texts_per_s']:.1f} texts/s "
                f"({limits[-1]['workers']} parallel batches of {args.max_batch_size})",
                flush=True,
            )
            shift = round_ % max(len(peers), 1)
            for peer in peers[shift:] + peers[:shift]:
                try:
                    rows = measure_peer(peer, args.bundle, texts_file, args)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    message = str(getattr(exc, "stderr", None) or exc)
                    results["peers"][peer] = {"failed": message[-500:]}
                    print(f"  {peer:<10} failed: {message[-300:]}", flush=True)
                    peers.remove(peer)
                    cells.pop(peer, None)
                    continue
                for level, row in rows.items():
                    cells.setdefault(peer, {}).setdefault(level, []).append(row)
    finally:
        texts_file.unlink()
    for peer, levels in cells.items():
        results["peers"][peer] = {level: median_round(rounds) for level, rounds in levels.items()}
    limit = median_round(limits)
    results["offline"] = limit
    ours = results["peers"].get("smallglot", {})
    ratios: dict[str, dict[str, float]] = {}
    for concurrency, rounds in cells.get("smallglot", {}).items():
        if any(r["errors"] for r in rounds):
            continue
        ratios[concurrency] = {
            "offline": median(
                [r["texts_per_s"] / o["texts_per_s"] for r, o in zip(rounds, limits, strict=True)]
            )
        }
        for peer, levels in cells.items():
            others = levels.get(concurrency, []) if peer != "smallglot" else []
            if others and not any(o["errors"] for o in others):
                ratios[concurrency][peer] = median(
                    [
                        r["texts_per_s"] / o["texts_per_s"]
                        for r, o in zip(rounds, others, strict=True)
                    ]
                )
    results["ratios_of_smallglot"] = ratios
    results["p50_c1_over_one_text"] = (  # only meaningful with one text per request
        ours["1"]["p50_ms"] / single["p50_ms"]
        if isinstance(ours, dict) and "1" in ours and args.texts_per_request == 1
        else None
    )
    results["settings"] = {
        "texts": len(texts),
        "texts_per_request": args.texts_per_request,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "max_batch_size": args.max_batch_size,
        "workers": args.workers,
        "cpus": os.cpu_count(),
    }
    table = markdown(results, args.concurrency)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        args.json.with_suffix(".md").write_text(table)


def markdown(results: dict[str, Any], levels: list[int]) -> str:
    """The results as Markdown: texts/s (p50, server CPU s per 1,000 texts) per peer and
    level, the median cells, then this service's ratio to each row, median over the rounds."""
    peers = results["peers"]
    lines = [
        "| clients | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for level in map(str, levels):
        cells = []
        for rows in peers.values():
            row = rows.get(level) if isinstance(rows, dict) else None
            if "skipped" in rows or "failed" in rows:
                cells.append("skipped" if "skipped" in rows else "failed (see the JSON)")
            elif not isinstance(row, dict):
                cells.append("-")
            elif row["errors"]:
                cells.append(f"{row['texts_per_s']:.0f}, {row['errors']:,} requests failed")
            else:
                cells.append(
                    f"{row['texts_per_s']:.0f} ({row['p50_ms']:,.1f} ms, "
                    f"{row['cpu_s_per_1000_texts']:.1f} s)"
                )
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    ratios = results["ratios_of_smallglot"]
    others = [p for p in peers if any(p in row for row in ratios.values())] + ["offline"]
    lines += ["", "| clients | " + " | ".join(f"vs {p}" for p in others) + " |"]
    lines.append("|---|" + "---|" * len(others))
    for level in map(str, levels):
        row = ratios.get(level, {})
        lines.append(
            f"| {level} | "
            + " | ".join(f"{row[p]:.2f}x" if p in row else "-" for p in others)
            + " |"
        )
    single, ours = results["p50_c1_over_one_text"], results["offline"]["texts_per_s"]
    lines += [
        "",
        f"Offline limit (median round) {ours:.0f} texts/s; p50 at one client over one offline "
        + (f"inference: {single:.2f}" if single is not None else "inference: -"),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
