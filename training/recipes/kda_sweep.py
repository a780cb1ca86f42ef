"""Choose the KDA optimiser settings on the held-out parallel pairs (never on evaluation sets).

Each setting trains a fresh `full` adapter on the same first `--examples` training pairs of an
existing run directory (its pseudo-labels and balance) and is scored by held-out loss and
agreement. Equal examples per setting, so equal compute:

    python training/recipes/kda_sweep.py runs/kda-vi-full --examples 16000 \
        --setting 128:1e-4 --setting 32:1e-4 --setting 32:3e-4 --setting 128:1e-3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from training.kda.config import KDAConfig
from training.kda.data import balance, read_pairs, split_heldout
from training.kda.pipeline import load_target
from training.kda.student import KDAStudent
from training.kda.train import FitSettings, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `kda run` directory (config, labels, balance)")
    parser.add_argument("--examples", type=int, default=16000)
    parser.add_argument("--setting", action="append", required=True, help="BATCH:LR")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = KDAConfig.from_file(args.run / "kda-config.json")
    probs = np.load(args.run / "pseudo-labels.npz")["probs"]
    pairs = read_pairs(config.parallel, config.limit)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        config.teacher, dtype=torch.float32
    )
    labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    keep, _ = balance(probs.argmax(1), labels, config.balance, config.seed)
    tok, table = load_target(config.target)
    targets = [pairs.target[i] for i in keep]
    ids = [
        list(x) for x in tok(targets, truncation=True, max_length=config.max_length)["input_ids"]
    ]
    train_idx, held_idx = split_heldout(len(keep), config.heldout, config.seed)
    train_idx = train_idx[: args.examples]
    results = []
    for setting in args.setting:
        batch, lr = setting.split(":")
        torch.manual_seed(config.seed)
        student = KDAStudent(teacher, table, config.variant, config.svd_rank, config.heads)
        with tempfile.TemporaryDirectory() as tmp:
            report = fit(
                student,
                [ids[i] for i in train_idx],
                probs[keep][train_idx],
                [ids[i] for i in held_idx],
                probs[keep][held_idx],
                FitSettings(float(lr), int(batch), epochs=1, patience=1, seed=config.seed),
                Path(tmp),
                tok.pad_token_id,
            )
        row = {
            "batch_size": int(batch),
            "learning_rate": float(lr),
            "examples": len(train_idx),
            "heldout_loss": report.best_heldout_loss,
            "heldout_agreement": report.heldout_agreement,
            "seconds": report.seconds,
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"run": str(args.run), "results": results}, indent=2))


if __name__ == "__main__":
    main()
