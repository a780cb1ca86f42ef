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

from training.batches import length_sorted_batches, pad_rows
from training.data import read_table
from training.evaluate.metrics import scores
from training.finetune.config import FinetuneConfig, TrainingFile
from training.loop import Loop, LoopSettings
from training.settings_files import LabelledTable
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
        main = TrainingFile(
            path=config.train,
            text_column=config.text_column,
            label_column=config.label_column,
            limit=config.limit,
        )
        # every training row, the file it came from, and per file the labels its loss runs over
        self.train_ids: list[list[int]] = []
        self.train_labels: list[int] = []
        self.train_file: list[int] = []
        self.train_rows: dict[str, int] = {}
        allowed = []
        for number, item in enumerate([main, *config.extra_train]):
            ids, gold = self._encode(item)
            self.train_ids += ids
            self.train_labels += gold
            self.train_file += [number] * len(ids)
            self.train_rows[item.path.name] = len(ids)
            allowed.append(self._allowed(item, gold))
        self.allowed = torch.stack(allowed)
        self.val_ids, self.val_labels = self._encode(
            main.model_copy(update={"path": config.val, "limit": None})
        )
        self.watched = [(item, *self._encode(item)) for item in config.watch]

    def _encode(self, item: LabelledTable) -> tuple[list[list[int]], list[int]]:
        table = read_table(item.path, item.text_column, item.label_column, item.label_map)
        index = {label: i for i, label in enumerate(self.config.labels)}
        unknown = sorted(set(table.labels) - set(index))
        if unknown:
            raise ValueError(
                f"{item.path.name} has labels {unknown} outside {self.config.labels}"
                " (map them with label_map)"
            )
        texts = [self.config.text_prefix + t for t in table.texts][: item.limit]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.config.max_length)
        return list(encoded["input_ids"]), [index[label] for label in table.labels][: item.limit]

    def _allowed(self, item: TrainingFile, labels: list[int]) -> torch.Tensor:
        """The logits a file's rows are scored over: all, or only the labels the file has."""
        mask = torch.ones(len(self.config.labels), dtype=torch.bool)
        if item.loss == "own_labels":
            mask[:] = False
            mask[sorted(set(labels))] = True
        return mask

    def module(self) -> nn.Module:
        return self.model

    def sizes(self) -> list[int]:
        return [len(x) for x in self.train_ids]

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        x, mask = pad_rows(self.train_ids, rows, self.pad, device)
        labels = torch.tensor([self.train_labels[i] for i in rows], device=device)
        allowed = self.allowed[[self.train_file[i] for i in rows]].to(device)
        logits = module(input_ids=x, attention_mask=mask).logits
        logits = logits.masked_fill(~allowed, float("-inf"))
        return nn.functional.cross_entropy(logits, labels, reduction="sum")

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        predicted = self._logits(module, self.val_ids).argmax(-1)
        result = scores(np.array(self.val_labels), predicted, self.config.labels)
        out = {"val_accuracy": result["accuracy"], "val_macro_f1": result["macro_f1"]}
        for item, ids, labels in self.watched:
            logits = self._logits(module, ids)
            own = np.zeros(len(self.config.labels), dtype=bool)
            own[sorted(set(labels))] = True
            name = item.path.stem
            among_own = np.where(own, logits, -np.inf).argmax(-1)
            out[f"{name}_accuracy"] = float((among_own == np.array(labels)).mean())
            out[f"{name}_other_label_share"] = float((~own[logits.argmax(-1)]).mean())
        return out

    def _logits(self, module: nn.Module, ids: list[list[int]]) -> np.ndarray:
        device = next(module.parameters()).device
        logits = np.zeros((len(ids), len(self.config.labels)), dtype=np.float32)
        for rows in length_sorted_batches(ids, 128):
            x, mask = pad_rows(ids, rows, self.pad, device)
            logits[rows] = module(input_ids=x, attention_mask=mask).logits.detach().float().cpu()
        return logits

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
            "train_rows": self.train_rows,
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
