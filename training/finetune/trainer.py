"""Fine-tuning for sequence classification on the shared loop (training/loop.py): texts
tokenized once, length-grouped batches with dynamic padding, a linear schedule with warm-up,
evaluation on the validation file a few times per epoch, the best model (by validation
macro-F1) kept, and a checkpoint after every evaluation from which an interrupted run resumes
where it stopped, on one process or several (`accelerate launch -m training finetune ...`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from training.batches import pad_rows
from training.data import read_table
from training.evaluate.metrics import scores
from training.finetune.config import FinetuneConfig
from training.loop import Loop, LoopSettings
from training.weights.resolve import resolve_model


class Finetuner:
    """The fine-tune as a loop method: its model, its examples, its loss and evaluation."""

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        source = resolve_model(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        labels = config.labels
        self.model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # a head with other labels is replaced, not kept
            dtype=torch.float32,  # train in fp32 whatever dtype the checkpoint was saved in
        )
        if config.freeze_embeddings:
            self.model.base_model.embeddings.word_embeddings.requires_grad_(False)
        self.pad = self.tokenizer.pad_token_id or 0
        self.main = True  # the main process (of several under accelerate launch / torchrun)
        self.train_ids, self.train_labels = self._encode(config.train, config.limit)
        self.val_ids, self.val_labels = self._encode(config.val, None)

    def _encode(self, path: Path, limit: int | None) -> tuple[list[list[int]], list[int]]:
        table = read_table(path, self.config.text_column, self.config.label_column)
        index = {label: i for i, label in enumerate(self.config.labels)}
        unknown = sorted(set(table.labels) - set(index))
        if unknown:
            raise ValueError(f"{path.name} has labels {unknown} outside {self.config.labels}")
        texts = [self.config.text_prefix + t for t in table.texts][:limit]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.config.max_length)
        return list(encoded["input_ids"]), [index[label] for label in table.labels][:limit]

    def module(self) -> nn.Module:
        return self.model

    def sizes(self) -> list[int]:
        return [len(x) for x in self.train_ids]

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        x, mask = pad_rows(self.train_ids, rows, self.pad, device)
        labels = torch.tensor([self.train_labels[i] for i in rows], device=device)
        logits = module(input_ids=x, attention_mask=mask).logits
        return nn.functional.cross_entropy(logits, labels, reduction="sum")

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        device = next(module.parameters()).device
        order = sorted(range(len(self.val_ids)), key=lambda i: len(self.val_ids[i]))
        predicted = np.zeros(len(self.val_ids), dtype=np.int64)
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            x, mask = pad_rows(self.val_ids, rows, self.pad, device)
            predicted[rows] = module(input_ids=x, attention_mask=mask).logits.argmax(-1).cpu()
        result = scores(np.array(self.val_labels), predicted, self.config.labels)
        return {"val_accuracy": result["accuracy"], "val_macro_f1": result["macro_f1"]}

    def keep(self, module: nn.Module, out: Path | None) -> None:
        if out is not None:  # the main process: the best model is the run's output
            module.save_pretrained(str(out))  # type: ignore[operator]
            self.tokenizer.save_pretrained(str(out))

    def train_mode(self, module: nn.Module) -> None:
        module.train()

    def run(self) -> dict[str, Any]:
        cfg = self.config
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "finetune-config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        steps_per_epoch = -(-len(self.train_ids) // cfg.batch_size)
        settings = LoopSettings.of(
            cfg,
            schedule="linear",
            clip=1.0,
            eval_every=max(1, -(-steps_per_epoch // cfg.evals_per_epoch)),
            metric="val_macro_f1",
            higher_is_better=True,
        )
        loop = Loop(settings, cfg.out, "fine-tune")
        self.main = loop.main
        result = loop.run(self, cfg.to_json())
        report = {
            "config": cfg.to_json(),
            "steps": result["steps"],
            "best_val_macro_f1": result["best"],
            "history": result["history"],
            "seconds": result["seconds"],
            "device": result["device"],
            "processes": result["processes"],
            "trainable_parameters": sum(
                p.numel() for p in self.model.parameters() if p.requires_grad
            ),
        }
        if loop.main:
            (cfg.out / "finetune-report.json").write_text(json.dumps(report, indent=2))
        return report
