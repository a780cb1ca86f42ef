"""The Vietnamese sentiment ablation as Markdown, from the evaluation reports of
training/recipes/vi_sentiment_adapt.sh (reports/kda/vi-adapt/eval-*.json): one row per step,
accuracy / macro-F1 on each set and their average, plus the held-out fit that chose.

    python training/recipes/vi_sentiment_table.py reports/kda/vi-adapt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [
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
SETS = ("vsfc", "viocd", "vlsp")


def main(folder: Path) -> None:
    choice_file = folder / "choice.json"
    choice = json.loads(choice_file.read_text())["models"] if choice_file.is_file() else {}
    print("| step | VSFC acc / F1 | ViOCD acc / F1 | VLSP acc / F1 | avg acc / F1 | held-out CE |")
    print("|---|---|---|---|---|---|")
    for key, name in ROWS:
        path = folder / f"eval-{key}.json"
        if not path.is_file():
            continue
        results = {r["dataset"]: r for r in json.loads(path.read_text())["results"]}
        cells = [f"{results[s]['accuracy']:.3f} / {results[s]['macro_f1']:.3f}" for s in SETS]
        acc = sum(results[s]["accuracy"] for s in SETS) / 3
        f1 = sum(results[s]["macro_f1"] for s in SETS) / 3
        fit = next((v for k, v in choice.items() if k.endswith(f"vi-sentiment-{key}")), None)
        held = f"{fit['heldout_cross_entropy']:.4f}" if fit else ""
        print(f"| {name} | {' | '.join(cells)} | {acc:.3f} / {f1:.3f} | {held} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/kda/vi-adapt"))
