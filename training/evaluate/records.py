"""Evaluation reports: print one line per scored file, write the JSON report, and turn reports
into the compact records model sources keep (and every rebuilt manifest carries)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD_KEYS = ("dataset", "n", "accuracy", "macro_f1", "scored_labels", "tokens_per_text")


def emit(results: list[dict[str, Any]], model: str, variant: str, report: Path | None) -> None:
    for result in results:
        print(
            f"{result['dataset']:<24} accuracy={result['accuracy']:.4f} "
            f"macro-F1={result['macro_f1']:.4f}",
            flush=True,
        )
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        body = {"model": model, "variant": variant, "results": results}
        report.write_text(json.dumps(body, indent=2))


def records(reports: list[Path]) -> list[dict[str, Any]]:
    """Each scored file of each report as a record for `source.json`'s `evaluation`."""
    out = []
    for path in reports:
        report = json.loads(path.read_text())
        for result in report["results"]:
            record = {"variant": report.get("variant", "fp32")}
            out.append(record | {k: result[k] for k in RECORD_KEYS if k in result})
    return out
