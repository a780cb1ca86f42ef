"""Choose the SIB-200 head's learning rate on dev (never on test) for a compression run.

Each setting trains one head (one seed) on train for the recipe's epochs and is scored by its
best dev macro-F1; test is not scored. Run it on the uncompressed model (the baseline every
stage is compared with) and on a student:

    python training/recipes/compress_head_sweep.py training/recipes/compress-mt.yaml \
        --model uncompressed --model vocab --lr 1e-4 --lr 1e-3 \
        --out reports/compress/mt/head-sweep.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from training.compress.config import CompressConfig
from training.compress.encoders import load_encoder
from training.compress.head import HeadSettings, train_head
from training.compress.pipeline import Pipeline


def encode(tokenizer: Any, texts: list[str], length: int) -> list[list[int]]:
    return [list(x) for x in tokenizer(texts, truncation=True, max_length=length)["input_ids"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the run's compression config (YAML/JSON)")
    parser.add_argument("--model", action="append", required=True, help="uncompressed or a stage")
    parser.add_argument("--lr", action="append", required=True, type=float)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline = Pipeline(CompressConfig.from_file(args.config))
    models = {name: (path, reduction) for name, path, reduction in pipeline.head_models()}
    unknown = [m for m in args.model if m not in models]
    if unknown:
        raise SystemExit(f"no finished model {unknown}; available: {list(models)}")
    labels = pipeline.labels()
    data = pipeline.task_data()
    head = pipeline.config.head
    length = pipeline.config.max_length
    results = []
    for name in args.model:
        path, reduction = models[name]
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        encoder = load_encoder(path)
        ids = {
            split: (encode(tokenizer, data[split][0], length), data[split][1])
            for split in ("train", "dev")
        }
        for lr in args.lr:
            settings = HeadSettings(
                head.kind, reduction, lr, head.batch_size, head.epochs, args.seed
            )
            _, report = train_head(
                encoder, labels, ids["train"], ids["dev"], tokenizer.pad_token_id, settings
            )
            row = {"model": name, "learning_rate": lr} | {
                k: report[k] for k in ("seed", "best_epoch", "dev_macro_f1", "seconds", "history")
            }
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"chosen_on": "dev macro-F1", "runs": results}, indent=2))


if __name__ == "__main__":
    main()
