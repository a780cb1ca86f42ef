"""How much of the task a compression stage's frozen sentence embeddings still carry: a
logistic-regression probe on mean-pooled hidden states, trained on SIB-200 train and scored
on dev (never test). Forward passes only, so it takes a minute per model on a CPU: the quick
way to compare distillation choices before training heads.

    python training/recipes/compress_probe.py runs/compress-mt runs/compress-mt-firstk \
        --out reports/compress/mt/probe.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from training.compress.config import CompressConfig
from training.compress.encoders import load_encoder
from training.compress.pipeline import Pipeline
from training.evaluate.metrics import scores


@torch.no_grad()
def embed(path: Path, texts: list[str], max_length: int) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    encoder = load_encoder(path).eval()
    out = []
    for start in range(0, len(texts), 32):
        batch = tokenizer(
            texts[start : start + 32],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def probe(
    train: torch.Tensor, y: list[int], dev: torch.Tensor, l2: float, classes: int
) -> np.ndarray:
    """Multinomial logistic regression on standardised features (L-BFGS): dev predictions."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    x, d = (train - mean) / std, (dev - mean) / std
    target = torch.tensor(y)
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, target)
        loss = loss + l2 * (weight**2).sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    return (d @ weight + bias).argmax(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="compression run directories")
    parser.add_argument("--l2", type=float, action="append", help="default: 0.1, 0.01, 0.001")
    parser.add_argument("--model", action="append", help="only these (uncompressed or a stage)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: list[dict[str, Any]] = []
    for run in args.runs:
        config = CompressConfig.from_file(run / "compress-config.json")
        pipeline = Pipeline(config)
        data, labels = pipeline.task_data(), pipeline.labels()
        for name, path, _ in pipeline.head_models():
            if args.model and name not in args.model:
                continue
            train = embed(path, data["train"][0], config.max_length)
            dev = embed(path, data["dev"][0], config.max_length)
            for l2 in args.l2 or [0.1, 0.01, 0.001]:
                predicted = probe(train, data["train"][1], dev, l2, len(labels))
                result = scores(np.array(data["dev"][1]), predicted, labels)
                row = {"run": str(run), "model": name, "l2": l2}
                row |= {k: round(result[k], 4) for k in ("accuracy", "macro_f1")}
                results.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"split": "SIB-200 dev", "probe": "logistic regression", "results": results}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
