"""Fit and apply the linear probe: multinomial logistic regression on frozen sentence
features, full-batch AdamW, the L2 penalty chosen on the validation file's macro-F1.

Rows of `polar` files are scored over the negative and positive logits only (the neutral
logit masked out of their softmax), so a two-class corpus sharpens the polar boundary
without claiming its sentences are not neutral."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from training.data import normalise, read_table
from training.evaluate.metrics import scores
from training.probe.config import LabelledFile, ProbeConfig
from training.probe.features import Encoder

WEIGHTS = "probe.safetensors"
SETTINGS = "probe.json"


@dataclass
class Rows:
    features: np.ndarray
    labels: np.ndarray
    polar: np.ndarray  # bool: score over the polar logits only
    weight: np.ndarray


def read_labelled(spec: LabelledFile, labels: list[str]) -> tuple[list[str], list[int]]:
    table = read_table(spec.path, spec.text_column, spec.label_column, spec.label_map or None)
    unknown = sorted(set(table.labels) - set(labels))
    if unknown:
        raise ValueError(f"{spec.path.name} has labels {unknown} outside {labels}: map them")
    texts, gold = table.texts[: spec.limit], table.labels[: spec.limit]
    return [normalise(t, False) for t in texts], [labels.index(g) for g in gold]


def _rows(encoder: Encoder, specs: list[LabelledFile], config: ProbeConfig) -> Rows:
    parts = []
    for spec in specs:
        texts, gold = read_labelled(spec, config.labels)
        feats = encoder.encode(texts, config.out / "features")
        n = len(gold)
        parts.append((feats, np.array(gold), np.full(n, spec.polar), np.full(n, spec.weight)))
    return Rows(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


def _logits(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return x @ weight.T + bias


def _train(rows: Rows, config: ProbeConfig, decay: float, neutral: int) -> dict[str, np.ndarray]:
    torch.manual_seed(config.seed)
    x = torch.from_numpy(rows.features)
    y = torch.from_numpy(rows.labels)
    w = torch.from_numpy(rows.weight).float()
    polar = torch.from_numpy(rows.polar)
    weight = torch.zeros(len(config.labels), x.shape[1], requires_grad=True)
    bias = torch.zeros(len(config.labels), requires_grad=True)
    optimizer = torch.optim.AdamW([weight, bias], lr=config.learning_rate, weight_decay=decay)
    steps = config.epochs * 10
    for _ in range(steps):
        logits = _logits(weight, bias, x * 10)  # unit-norm features: a wider logit range
        logits = logits.masked_fill(
            polar.unsqueeze(1) & (torch.arange(logits.shape[1]) == neutral), -1e4
        )
        loss = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"weight": weight.detach().numpy() * 10, "bias": bias.detach().numpy()}


def fit(config: ProbeConfig) -> dict[str, Any]:
    from training.weights.resolve import resolve_model

    encoder = Encoder(resolve_model(config.model), config.prefix, config.max_length)
    train = _rows(encoder, config.train, config)
    val = _rows(encoder, [config.val], config)
    neutral = config.labels.index("neutral") if "neutral" in config.labels else -1
    tried = []
    best: tuple[float, dict[str, np.ndarray]] | None = None
    for decay in config.weight_decays:
        params = _train(train, config, decay, neutral)
        predicted = (val.features @ params["weight"].T + params["bias"]).argmax(1)
        result = scores(val.labels, predicted, config.labels)
        tried.append({"weight_decay": decay, "val_macro_f1": round(result["macro_f1"], 4)})
        print(json.dumps(tried[-1]), flush=True)
        if best is None or result["macro_f1"] > best[0]:
            best = (result["macro_f1"], params)
    assert best is not None
    config.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in best[1].items()}, str(config.out / WEIGHTS))
    priors = np.bincount(train.labels[~train.polar], minlength=len(config.labels))
    report = {
        "model": config.model,
        "prefix": config.prefix,
        "max_length": config.max_length,
        "labels": config.labels,
        "train_rows": len(train.labels),
        "train_prior": (priors / priors.sum()).round(4).tolist(),
        "tried": tried,
        "chosen": max(tried, key=lambda t: t["val_macro_f1"]),
        "config": json.loads(config.model_dump_json()),
    }
    (config.out / SETTINGS).write_text(json.dumps(report, indent=2))
    return report


class Probe:
    """A fitted probe, ready to give class probabilities for raw texts."""

    def __init__(self, run: Path) -> None:
        from training.weights.resolve import resolve_model

        settings_file = run / SETTINGS
        if not settings_file.is_file():
            raise FileNotFoundError(f"{settings_file} is missing: run `probe fit` first")
        self.settings = json.loads(settings_file.read_text())
        self.labels: list[str] = self.settings["labels"]
        params = load_file(str(run / WEIGHTS))
        self.weight, self.bias = params["weight"], params["bias"]
        self.encoder = Encoder(
            resolve_model(self.settings["model"]),
            self.settings["prefix"],
            self.settings["max_length"],
        )
        self.cache = run / "features"

    def logits(self, texts: list[str]) -> np.ndarray:
        feats = self.encoder.encode([normalise(t, False) for t in texts], self.cache)
        return feats @ self.weight.T + self.bias
