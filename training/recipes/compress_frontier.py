"""Accuracy against parameters per language: every compression table's rows (the stage models
of each candidate, from `python -m training compress table`), their Pareto frontier, and the
compression paper's XLM-R points (its Table 1, topic classification), each as the macro-F1
drop from its own uncompressed model.

    python training/recipes/compress_frontier.py [--reports reports/compress]

writes `<reports>/<lang>/frontier.png` for each language folder holding at least one table.
A student whose task-aware distillation was continued as a body trained for topics (`python -m
training compress tasks`, e.g. `training/recipes/tasks-sw-fast.yaml`) is a point of its own,
read from its heads' report copied beside the tables (`CONTINUED`), its `served` field set when
the rule put it in a slot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from training.compress.table import served

# The paper's Table 1 (XLM-R-base, TC macro-F1, mean of 3 seeds): share of parameters kept
# and the drop from Base-[mt, sk, sw] (84.96, 86.23, 87.52). It has no Vietnamese.
PAPER_BASE = {"mt": 84.96, "sk": 86.23, "sw": 87.52}
PAPER_ROWS = [  # (label, share kept, mt, sk, sw)
    ("layers ×2", 0.85, 84.05, 86.33, 82.89),
    ("FFN 2048", 0.80, 84.74, 86.14, 82.39),
    ("hidden 564", 0.60, 83.43, 84.89, 85.84),
    ("564 + 40k vocab", 0.15, 84.11, 85.29, 85.71),
    ("hidden 456", 0.47, 78.48, 85.99, 83.06),
    ("456 + 40k vocab", 0.13, 78.47, 86.10, 82.49),
    ("hidden 312", 0.32, 66.94, 83.98, 76.37),
    ("312 + 40k vocab", 0.08, 67.22, 84.00, 77.95),
]
# each table (a `compress table` output) under the language's folder, and its legend
TABLES = {
    "first-family/table": "v0.1 (192 wide)",
    "small": "small (384)",
    "tiny": "tiny (256, whole heads)",
    "tiny-notask": "tiny, no task-aware distillation",
    "fast": "faster (384, FFN 768)",
    "fast-notask": "faster, no task-aware distillation",
}

# the heads' report of a student whose task-aware distillation was continued (`compress tasks`)
CONTINUED = {
    "tiny-continued": "tiny, its body distilled for topics",
    "fast-task": "faster (FFN 768), its body distilled for topics",
    "longer-task": "faster, its body distilled 4 epochs more",
    "tiny-longer": "tiny, its body distilled 3 epochs more",
    "ensemble-task": "faster, a round more taught by 3 seeds",
    "heads-task": "faster, its topic heads distilled",
    "heads-all-task": "faster, its heads distilled on all text",
    "tiny-heads": "tiny, its topic heads distilled",
}


def continued_point(report: dict[str, Any], uncompressed: dict[str, Any]) -> tuple[float, float]:
    """(share, drop in points) of a continued student's heads against the family's
    uncompressed row (the same SIB-200 test split, mean over seeds)."""
    share = report["encoder_parameters"] / uncompressed["parameters"]
    drop = report["figures"]["report_macro_f1"]["mean"] - uncompressed["test_macro_f1"]["mean"]
    return share, 100 * drop


def points(table: dict[str, Any], name: str, serves: bool) -> list[tuple[str, float, float, bool]]:
    """(label, share, drop in points, served) for each scored row of one table; the last row
    is served when the table's candidate is."""
    rows = table["rows"]
    base = rows["uncompressed"]["test_macro_f1"]["mean"]
    served = list(rows)[-1] if serves else None
    return [
        (f"{name}: {stage}", row["share_of_uncompressed"],
         100 * (row["test_macro_f1"]["mean"] - base), stage == served)
        for stage, row in rows.items()
        if stage != "uncompressed" and "test_macro_f1" in row
    ]  # fmt: skip


def frontier(found: list[tuple[str, float, float, bool]]) -> list[tuple[float, float]]:
    """The points no other point beats with fewer parameters and a smaller drop."""
    best: list[tuple[float, float]] = []
    for _, share, drop, _ in sorted(found, key=lambda p: (p[1], -p[2])):
        if not best or drop > best[-1][1]:
            best.append((share, drop))
    return best


def plot(language: str, folder: Path) -> Path | None:
    tables = {
        name: json.loads((folder / f"{name}.json").read_text())
        for name in TABLES
        if (folder / f"{name}.json").is_file()
    }
    if not tables:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    found: list[tuple[str, float, float, bool]] = []
    for name, table in tables.items():
        mine = points(table, TABLES[name], served(name, tables))
        found += mine
        ax.scatter([100 * p[1] for p in mine], [p[2] for p in mine], label=TABLES[name])
        for label, share, drop, starred in mine:
            ax.annotate(label.split(": ")[1], (100 * share, drop), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
            if starred:
                ax.scatter([100 * share], [drop], marker="*", s=220, facecolors="none",
                           edgecolors="black")  # fmt: skip
    # the family's uncompressed row (the first family's was scored with other heads)
    uncompressed = tables.get("small", next(iter(tables.values())))["rows"]["uncompressed"]
    for number, (name, legend) in enumerate(CONTINUED.items()):
        if not (folder / f"{name}.json").is_file():
            continue
        report = json.loads((folder / f"{name}.json").read_text())
        share, drop = continued_point(report, uncompressed)
        found.append((legend, share, drop, bool(report.get("served"))))
        # colours after the tables' (C0-C3; the paper's points are red)
        ax.scatter([100 * share], [drop], marker="D", color=f"C{4 + number}", label=legend)
        if report.get("served"):
            ax.scatter([100 * share], [drop], marker="*", s=220, facecolors="none",
                       edgecolors="black")  # fmt: skip
    edge = frontier(found)
    ax.step([100 * s for s, _ in edge], [d for _, d in edge], where="post", color="grey",
            linestyle="--", label="our frontier")  # fmt: skip
    if language in PAPER_BASE:
        column = ("mt", "sk", "sw").index(language) + 2
        shares = [100 * row[1] for row in PAPER_ROWS]
        drops = [float(row[column]) - PAPER_BASE[language] for row in PAPER_ROWS]
        ax.scatter(shares, drops, marker="^", color="red", label="paper (XLM-R, its Table 1)")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.axhline(-3, color="green", linewidth=0.5, linestyle=":", label="3 points below")
    ax.set_xscale("log")
    ax.set_xlabel("parameters kept (% of the uncompressed model, log scale)")
    ax.set_ylabel("SIB-200 test macro-F1 − uncompressed (points)")
    ax.set_title(f"{language}: accuracy against size (★ served)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = folder / "frontier.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=Path("reports/compress"))
    args = parser.parse_args()
    for folder in sorted(p for p in args.reports.iterdir() if p.is_dir()):
        written = plot(folder.name, folder)
        if written:
            print(written)


if __name__ == "__main__":
    main()
