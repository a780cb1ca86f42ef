"""The training loop, on 🤗 Accelerate: a method supplies what it trains, the size of each
training example, a loss over a set of examples, an evaluation and how to keep its best; the
loop owns the rest: devices, mixed precision, gradient accumulation, clipping, AdamW and its
schedule, evaluation every N steps, best-keeping, early stopping, checkpoints that resume
exactly (model, optimiser, schedule, step, data position, best, history), a progress bar and
a JSON log.

Several processes (`accelerate launch` or `torchrun`, GPUs or CPU with gloo) split each
global batch between them: rank r takes every world-th example of it, so the ranks see
disjoint data. The method's loss is a *sum* over its examples and the loop divides it by the
global batch's size and multiplies by the world size, so after the gradients are averaged
across ranks they equal one process's gradient on the whole batch (and, accumulated over N
batches, the mean of their gradients). Gradients are exchanged once per optimiser step.
Random state is reseeded from (seed, batch, rank) before every batch, so a resumed run takes
exactly the steps an uninterrupted one takes. Only the main process writes checkpoints, logs
and kept models; a checkpoint holds no per-rank state, so a run may resume with another
number of processes.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from training.batches import length_grouped_batches

CHECKPOINT = "loop-checkpoint.pt"
LOG = "loop-log.jsonl"


class LoopSettings(BaseModel):
    """The optimiser, schedule, evaluation and checkpoint settings every method shares."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=1)  # global: across processes and accumulation
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    schedule: Literal["constant", "linear"] = "constant"
    clip: float | None = Field(default=1.0, gt=0)
    accumulation: int = Field(default=1, ge=1)  # optimiser steps every N global batches
    eval_every: int | None = Field(default=None, ge=1)  # steps into each epoch, and its end
    patience: int | None = Field(default=None, ge=1)  # evaluations without a better metric
    metric: str = "loss"
    higher_is_better: bool = False
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 13

    @classmethod
    def of(cls, settings: object, **fixed: Any) -> LoopSettings:
        """The loop settings a method's own settings hold (every field of the same name),
        with what the method fixes itself (its metric, a schedule it always uses)."""
        shared = {k: getattr(settings, k) for k in cls.model_fields if hasattr(settings, k)}
        return cls(**shared | fixed)


class Method(Protocol):
    """What a training method brings to the loop."""

    def module(self) -> nn.Module:
        """The module to train (its parameters with requires_grad are optimised)."""
        ...

    def sizes(self) -> list[int]:
        """One size per training example (tokens), for length-grouped batches."""
        ...

    def loss(self, module: nn.Module, rows: list[int], device: torch.device) -> torch.Tensor:
        """The loss *summed* over the training examples `rows`."""
        ...

    def evaluate(self, module: nn.Module) -> dict[str, float]:
        """Held-out figures; the loop's `metric` must be one of them."""
        ...

    def keep(self, module: nn.Module, out: Path | None) -> None:
        """Keep the module as the best so far. Called on every process (all of them go on
        with the best weights); `out` is the run directory on the main process, None on the
        others and for a run without a directory: keep it in memory then."""
        ...

    def train_mode(self, module: nn.Module) -> None:
        """Put the module in training mode (e.g. all but a frozen encoder's dropout)."""
        ...


def processes() -> PartialState:
    """The processes this run was launched on (one, or torchrun's / accelerate launch's N):
    on a machine without CUDA they meet over gloo. Every part of a run that asks who writes
    must ask this, the same way the loop's Accelerator does."""
    return PartialState(cpu=not torch.cuda.is_available())


def leave_process_group() -> None:
    """End a run launched on several processes (torchrun) by leaving its process group:
    gloo's worker threads still alive when the interpreter is torn down abort the process
    (SIGABRT, "terminate called without an active exception"). A no-op on one process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def shard(rows: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s part of a global batch: every world-th example (disjoint across ranks,
    together the whole batch)."""
    return rows[rank::world]


def _reseed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Loop:
    def __init__(self, settings: LoopSettings, out: Path | None, name: str = "train") -> None:
        """`out` holds the checkpoint and the log; None for short runs that keep nothing on
        disk (a task head's few minutes), which then cannot resume."""
        self.settings, self.out, self.name = settings, out, name
        self.accelerator = Accelerator(
            mixed_precision=settings.mixed_precision,
            cpu=not torch.cuda.is_available(),  # several CPU processes then meet over gloo
        )

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def shard(self, rows: list[int]) -> list[int]:
        return shard(rows, self.accelerator.process_index, self.accelerator.num_processes)

    def run(self, method: Method, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train to the end (or early stop), resuming from `out`'s checkpoint if there is one.
        `config` is stored in the checkpoint; a checkpoint made with another is refused."""
        s, acc = self.settings, self.accelerator
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        module = method.module()
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
        sizes = method.sizes()
        per_epoch = -(-len(sizes) // s.batch_size)
        steps_per_epoch = -(-per_epoch // s.accumulation)
        total = steps_per_epoch * s.epochs
        warmup = int(s.warmup_ratio * total)
        schedule = (
            get_linear_schedule_with_warmup(optimizer, warmup, total)
            if s.schedule == "linear"
            else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        )
        wrapped, optimizer = acc.prepare(module, optimizer)
        state: dict[str, Any] = {
            "batch": 0, "step": 0, "best": None, "stale": 0, "history": [], "seconds": 0.0,
            "stopped_early": False,
        }  # fmt: skip
        checkpoint = self.out / CHECKPOINT if self.out is not None else None
        if checkpoint is not None and checkpoint.is_file():
            saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
            if saved.get("config") != config:
                raise ValueError(
                    f"{checkpoint} was made with other settings; remove it or use another out"
                )
            acc.unwrap_model(wrapped).load_state_dict(saved["module"])
            optimizer.optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            state = saved["state"]
            if self.main:
                print(f"{self.name}: resuming at step {state['step']} of {total}", flush=True)
        started = time.perf_counter() - state["seconds"]
        eval_every = s.eval_every or steps_per_epoch
        progress = tqdm(
            total=total, initial=state["step"], desc=self.name, unit="step",
            disable=not self.main, leave=self.out is not None,
        )  # fmt: skip
        running: list[tuple[float, int]] = []  # (summed loss, examples) of this rank's batches
        method.train_mode(wrapped)
        while state["batch"] < per_epoch * s.epochs and not state["stopped_early"]:
            epoch, index = divmod(state["batch"], per_epoch)
            rows = length_grouped_batches(sizes, s.batch_size, s.seed + epoch)[index]
            group = min(s.accumulation, per_epoch - (index - index % s.accumulation))
            stepping = index % s.accumulation == group - 1
            _reseed(s.seed * 1_000_003 + state["batch"] * 101 + acc.process_index)
            mine = self.shard(rows)
            weight = acc.num_processes / (len(rows) * group)
            if not mine:  # fewer examples than processes: a weightless pass keeps ranks in step
                mine, weight = rows[:1], 0.0
            with contextlib.nullcontext() if stepping else acc.no_sync(wrapped):
                summed = method.loss(wrapped, mine, acc.device)
                acc.backward(summed * weight)
            state["batch"] += 1
            running.append((float(summed.detach()) if weight else 0.0, len(mine) if weight else 0))
            if not stepping:
                continue
            if s.clip is not None:
                acc.clip_grad_norm_(params, s.clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            progress.update()
            recent = running[-50:]
            progress.set_postfix(
                loss=f"{sum(a for a, _ in recent) / max(1, sum(n for _, n in recent)):.4f}"
            )
            end_of_epoch = state["batch"] % per_epoch == 0
            if (state["step"] - epoch * steps_per_epoch) % eval_every == 0 or end_of_epoch:
                self._evaluate(method, wrapped, state, running, epoch)
                running = []
                state["seconds"] = time.perf_counter() - started
                self._save(wrapped, optimizer, schedule, state, config)
                method.train_mode(wrapped)
        progress.close()
        acc.wait_for_everyone()
        return {
            "steps": state["step"],
            "best": state["best"],
            "stopped_early": state["stopped_early"],
            "history": state["history"],
            "processes": acc.num_processes,
            "device": str(acc.device),
            "seconds": round(time.perf_counter() - started, 1),
        }

    def _evaluate(
        self,
        method: Method,
        wrapped: nn.Module,
        state: dict[str, Any],
        running: list[tuple[float, int]],
        epoch: int,
    ) -> None:
        """Every process evaluates the same weights (so all agree on early stopping); the main
        process keeps the best and logs."""
        s, acc = self.settings, self.accelerator
        module = acc.unwrap_model(wrapped)
        module.eval()
        with torch.no_grad():
            figures = method.evaluate(module)
        if s.metric not in figures:
            raise KeyError(f"the evaluation gives {sorted(figures)}, not the metric {s.metric!r}")
        value = float(figures[s.metric])
        best = state["best"]
        better = best is None or (value > best if s.higher_is_better else value < best)
        entry = {
            "step": state["step"],
            "epoch": epoch + 1,
            "train_loss": self._mean_loss(running),
        } | {k: round(float(v), 6) for k, v in figures.items()}
        state["history"].append(entry)
        if better:
            state["best"], state["stale"] = value, 0
            method.keep(module, self.out if self.main else None)
        else:
            state["stale"] += 1
            if s.patience is not None and state["stale"] >= s.patience:
                state["stopped_early"] = True
        if self.main and self.out is not None:
            tqdm.write(json.dumps(entry))
            with (self.out / LOG).open("a") as log:
                log.write(json.dumps(entry) + "\n")
        acc.wait_for_everyone()

    def _mean_loss(self, running: list[tuple[float, int]]) -> float | None:
        """The training loss per example since the last evaluation, over every process."""
        acc = self.accelerator
        totals = torch.tensor([sum(a for a, _ in running), sum(n for _, n in running)])
        totals = acc.reduce(totals.to(acc.device), reduction="sum").cpu()
        return round(float(totals[0] / totals[1]), 6) if totals[1] else None

    def _save(
        self,
        wrapped: nn.Module,
        optimizer: Any,
        schedule: Any,
        state: dict[str, Any],
        config: dict[str, Any] | None,
    ) -> None:
        acc = self.accelerator
        if self.main and self.out is not None:
            partial = self.out / f"{CHECKPOINT}.partial"
            torch.save(
                {
                    "config": config,
                    "module": acc.unwrap_model(wrapped).state_dict(),
                    "optimizer": optimizer.optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "state": state,
                },
                partial,
            )
            partial.replace(self.out / CHECKPOINT)  # a stop while saving keeps the last one
        acc.wait_for_everyone()
