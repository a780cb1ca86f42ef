"""The Vietnamese sentiment ablation as Markdown, from the evaluation reports of
training/recipes/vi_sentiment_adapt.sh (reports/kda/vi-adapt/eval-*.json) or of the broader
teacher's path, training/recipes/vi_sentiment_broad.sh (reports/kda/vi-broad): one row per
step, accuracy / macro-F1 on each set and their average, plus the held-out fits that chose
(within the family, `choice.json`; against the served model, `choice-joint.json`).

    python training/recipes/vi_sentiment_table.py reports/kda/vi-adapt
    python training/recipes/vi_sentiment_table.py reports/kda/vi-broad
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIRST = [
    ("served-before", "previous release: KDA `linear+self` student (re-scored)"),
    ("lower", "1. + the teacher's normalisation on the Vietnamese side (NFC, lowercase)"),
    ("balanced", "2. + logits moved from the training prior to equal classes"),
    ("em", "2, EM: logits moved to EM's prior estimate on vi-unlabeled instead"),
    ("probe", "3. zero-shot probe: frozen e5-small + linear layer (SemEval + airline + SST-2)"),
    ("ensemble-balanced", "4. ensemble: 1 and 3, each moved to equal classes, averaged"),
    ("ensemble-em", "4, EM: the ensemble with EM's priors instead"),
    ("adapt-1", "5. student adapted on the ensemble's labels of vi-unlabeled (+ vocabulary)"),
    ("adapt-2", "6. one self-training round (5 + the probe relabel, adapt again)"),
]
BROAD = [
    ("lower", "B1. KDA student of the broader teacher (pairs balanced equally), normalised"),
    ("balanced", "B2. + logits moved from the training prior to equal classes"),
    ("em", "B2, EM: logits moved to EM's prior estimate on vi-unlabeled instead"),
    ("probe", "3. zero-shot probe (as in the first path)"),
    ("ensemble-balanced", "B4. ensemble: B1 and 3, each moved to equal classes, averaged"),
    ("ensemble-em", "B4, EM: the ensemble with EM's priors instead"),
    ("adapt-1", "B5. B1 adapted on B4's labels of vi-unlabeled (+ vocabulary)"),
    ("adapt-pairs", "B6. B5 with the KDA run's training pairs mixed in (teacher's labels)"),
    ("ensemble-joint", "joint ensemble: 3, the first path's 1 and B1 (the reference of rule 2)"),
]
ROWS = {"vi-adapt": FIRST, "vi-broad": BROAD}
SETS = ("vsfc", "viocd", "vlsp")


def fits(path: Path) -> dict[str, dict[str, float]]:
    """Held-out fits of an `ensemble heldout` report, by model path (none if not written)."""
    return json.loads(path.read_text())["models"] if path.is_file() else {}


def fit_of(found: dict[str, dict[str, float]], key: str) -> dict[str, float] | None:
    """The fit of the candidate bundle `vi-sentiment-<key>`, wherever its run put it."""
    return next((v for k, v in found.items() if k.endswith(f"vi-sentiment-{key}")), None)


def main(folder: Path) -> None:
    rows = ROWS.get(folder.resolve().name)
    if rows is None:
        raise SystemExit(f"{folder}: no ablation of that name (one of {', '.join(ROWS)})")
    choice = fits(folder / "choice.json")
    joint = fits(folder / "choice-joint.json")
    print("| step | VSFC acc / F1 | ViOCD acc / F1 | VLSP acc / F1 | avg acc / F1 | held-out CE |")
    print("|---|---|---|---|---|---|")
    for key, name in rows:
        path = folder / f"eval-{key}.json"
        if not path.is_file():
            continue
        results = {r["dataset"]: r for r in json.loads(path.read_text())["results"]}
        cells = [f"{results[s]['accuracy']:.3f} / {results[s]['macro_f1']:.3f}" for s in SETS]
        acc = sum(results[s]["accuracy"] for s in SETS) / 3
        f1 = sum(results[s]["macro_f1"] for s in SETS) / 3
        fit = fit_of(choice, key)
        held = f"{fit['heldout_cross_entropy']:.4f}" if fit else ""
        against = fit_of(joint, key)
        if against:  # the family's pick, measured against the served model (rule 2)
            held += f" (joint: {against['heldout_cross_entropy']:.4f})"
        print(f"| {name} | {' | '.join(cells)} | {acc:.3f} / {f1:.3f} | {held} |")
    served = joint.get("models/vi-sentiment")
    if served:
        print(f"| served model (first path, step 5), against the joint ensemble "
              f"| | | | | (joint: {served['heldout_cross_entropy']:.4f}) |")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/kda/vi-adapt"))
