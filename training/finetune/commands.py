"""`python -m training finetune`: a sequence classifier fine-tuned on the shared loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


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
        config = FinetuneConfig.from_options(**overrides)
    finetuner = Finetuner(config)
    report = finetuner.run()
    if finetuner.main:  # one summary, not one per process
        keys = ("steps", "best_val_macro_f1", "seconds", "device", "processes")
        print(json.dumps({k: report[k] for k in (*keys, "trainable_parameters")}, indent=2))
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
    ft.add_argument("--lr", type=float)
    ft.add_argument("--batch-size", type=int)
    ft.add_argument("--max-length", type=int)
    ft.add_argument("--text-prefix")
    ft.add_argument("--freeze-embeddings", action="store_true")
    ft.add_argument("--threads", type=int)
    ft.add_argument("--limit", type=int, help="first N training rows only")
    ft.add_argument("--seed", type=int)
    ft.set_defaults(func=_finetune)
