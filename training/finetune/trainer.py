"""Fine-tuning loop for sequence classification, sized for small machines: texts tokenized
once, length-grouped batches with dynamic padding, evaluation on the validation file a few
times per epoch, the best model (by validation macro-F1) kept, and a checkpoint after every
evaluation from which an interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from training.batches import length_grouped_batches
from training.data import read_table
from training.evaluate.metrics import scores
from training.finetune.config import FinetuneConfig
from training.weights.resolve import resolve_model

CHECKPOINT = "checkpoint.pt"


class Finetuner:
    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
        ).to(self.device)
        if config.freeze_embeddings:
            self.model.base_model.embeddings.word_embeddings.requires_grad_(False)
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

    def _batch(self, ids: list[list[int]], rows: list[int]) -> dict[str, torch.Tensor]:
        width = max(len(ids[i]) for i in rows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        self.model.eval()
        preds = []
        order = sorted(range(len(self.val_ids)), key=lambda i: len(self.val_ids[i]))
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            logits = self.model(**self._batch(self.val_ids, rows)).logits
            preds += list(zip(rows, logits.argmax(-1).tolist(), strict=True))
        self.model.train()
        pred = np.array([p for _, p in sorted(preds)])
        return scores(np.array(self.val_labels), pred, self.config.labels)

    def run(self) -> dict[str, Any]:
        cfg = self.config
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "finetune-config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        lengths = [len(x) for x in self.train_ids]
        steps_per_epoch = -(-len(lengths) // cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        state: dict[str, Any] = {"step": 0, "best": -1.0, "history": [], "seconds": 0.0}
        checkpoint = cfg.out / CHECKPOINT
        if checkpoint.is_file():
            saved = torch.load(checkpoint, map_location=self.device, weights_only=False)
            if saved["config"] != cfg.to_json():
                raise ValueError(
                    f"{checkpoint} was made with other settings; remove it or use another --out"
                )
            self.model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            state = saved["state"]
            print(f"resuming from step {state['step']} of {total}", flush=True)
        eval_every = max(1, -(-steps_per_epoch // cfg.evals_per_epoch))
        torch.manual_seed(cfg.seed + state["step"])
        self.model.train()
        started = time.perf_counter() - state["seconds"]
        progress = tqdm(total=total, initial=state["step"], desc="fine-tune", unit="step")
        running = []
        for epoch in range(state["step"] // steps_per_epoch, cfg.epochs):
            batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed + epoch)
            for index in range(state["step"] - epoch * steps_per_epoch, len(batches)):
                rows = batches[index]
                labels = torch.tensor([self.train_labels[i] for i in rows], device=self.device)
                loss = self.model(**self._batch(self.train_ids, rows), labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                running.append(float(loss))
                progress.update()
                progress.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")
                last = index == len(batches) - 1
                if (index + 1) % eval_every == 0 or last:
                    self._checkpoint(state, running, epoch, optimizer, schedule, started)
                    running = []
        progress.close()
        report = {
            "config": cfg.to_json(),
            "steps": state["step"],
            "best_val_macro_f1": state["best"],
            "history": state["history"],
            "seconds": round(time.perf_counter() - started, 1),
            "device": str(self.device),
            "trainable_parameters": sum(p.numel() for p in params),
        }
        (cfg.out / "finetune-report.json").write_text(json.dumps(report, indent=2))
        return report

    def _checkpoint(
        self,
        state: dict[str, Any],
        running: list[float],
        epoch: int,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        started: float,
    ) -> None:
        val = self.evaluate()
        entry = {
            "step": state["step"],
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(running)), 4) if running else None,
            "val_accuracy": round(val["accuracy"], 4),
            "val_macro_f1": round(val["macro_f1"], 4),
        }
        state["history"].append(entry)
        tqdm.write(json.dumps(entry))
        if val["macro_f1"] > state["best"]:
            state["best"] = val["macro_f1"]
            self.model.save_pretrained(str(self.config.out))
            self.tokenizer.save_pretrained(str(self.config.out))
        state["seconds"] = time.perf_counter() - started
        torch.save(
            {
                "config": self.config.to_json(),
                "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "state": state,
            },
            self.config.out / CHECKPOINT,
        )
