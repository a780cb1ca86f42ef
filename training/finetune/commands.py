"""`python -m training finetune`: a sequence classifier fine-tuned on the shared loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.options import summary


def _finetune(args: argparse.Namespace) -> int:
    from training.finetune.config import FinetuneConfig
    from training.finetune.trainer import Finetuner

    config = FinetuneConfig.from_command(args)
    finetuner = Finetuner(config)
    report = finetuner.run()
    if finetuner.main:  # one summary, not one per process
        keys = ("steps", "best_val_macro_f1", "seconds", "device", "processes")
        print(json.dumps(summary(report, (*keys, "trainable_parameters")), indent=2))
        print(f"best model: {config.out}")
    return 0


def register(commands: Any) -> None:
    ft = commands.add_parser("finetune", help="fine-tune a sequence classifier (resumable)")
    ft.add_argument("--config", type=Path, help="YAML/JSON settings; flags override them")
    ft.add_argument("--model", help="model directory, minilm, e5-small or a hub name")
    ft.add_argument("--train", type=Path)
    ft.add_argument("--val", type=Path)
    ft.add_argument("--out", type=Path)
    ft.add_argument("--epochs", type=int)
    ft.add_argument("--lr", dest="learning_rate", type=float)
    ft.add_argument("--batch-size", type=int)
    ft.add_argument("--max-length", type=int)
    ft.add_argument("--text-prefix")
    ft.add_argument("--freeze-embeddings", action="store_true", default=None)
    ft.add_argument("--threads", type=int)
    ft.add_argument("--limit", type=int, help="first N training rows only")
    ft.add_argument("--seed", type=int)
    ft.set_defaults(func=_finetune)
