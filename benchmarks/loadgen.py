"""Closed-loop HTTP load: N keep-alive connections, each sending one request at a time.

Deliberately minimal (raw asyncio streams, no HTTP library) so that on a small machine the
client costs as little CPU as possible and the figures describe the server. Runs as its own
process; prints one JSON line: requests, texts, errors, wall time and latency percentiles."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path


async def _client(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    texts_per: int,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
    seed: int,
) -> int:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < stop_at:
            body = bodies[rng.randrange(len(bodies))]
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if status != 200:
                errors.append(f"{status} {payload[:200]!r}")
            elif payload.count(b'"label"') != texts_per:
                errors.append(f"wrong result count in {payload[:200]!r}")
            done += 1
    finally:
        writer.close()
    return done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace) -> dict[str, float | int | list[str]]:
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    per = args.texts_per_request
    bodies = [
        json.dumps(
            {"texts": texts[i : i + per]} if per > 1 or args.always_list else {"text": texts[i]},
            ensure_ascii=False,
        ).encode()
        for i in range(0, len(texts) - per + 1)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    stop_at = started + args.seconds
    counts = await asyncio.gather(
        *(
            _client(args.host, args.port, args.path, bodies, per, stop_at, latencies, errors, seed)
            for seed in range(args.concurrency)
        )
    )
    wall = time.perf_counter() - started
    return {
        "requests": sum(counts),
        "texts": sum(counts) * per,
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": wall,
        "texts_per_s": sum(counts) * per / wall,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/sentiment")
    parser.add_argument("--texts", required=True, help="JSON file holding a list of texts")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--always-list", action="store_true", help='send {"texts": [...]} even for one text'
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
