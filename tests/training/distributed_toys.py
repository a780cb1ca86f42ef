"""The toy KDA distillation and the toy compression distillation as a script, for the loop's
multi-process test: `python -m tests.training.distributed_toys {kda,compress} OUT [EPOCHS]`,
alone or under `torchrun --nproc-per-node N`. Every rank writes the training rows it was
given to OUT-rows-<rank>.json (beside OUT, not in it); the main process writes the report
and the trained weights into OUT."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from training.compress.distill import Distillation, DistillSettings, distill
from training.kda.student import KDAStudent
from training.kda.train import FitSettings, _KDAMethod, fit
from training.loop import leave_process_group

SEEN: list[list[int]] = []


def recording(method: Any) -> None:
    """Wrap a method's loss so the rows each rank trains on are recorded."""
    original = method.loss

    def loss(self: Any, module: torch.nn.Module, rows: list[int], device: torch.device) -> Any:
        SEEN.append(list(rows))
        return original(self, module, rows, device)

    method.loss = loss


def still_encoder(layers: int, seed: int, hidden: int = 24) -> BertModel:
    """A tiny encoder without dropout (one and several processes then agree)."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=40, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, pad_token_id=0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertModel(config, add_pooling_layer=False).eval()


def sentences(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(1, 40, size=rng.integers(3, 10))] for _ in range(n)]


def run_compress(out: Path, epochs: int) -> dict[str, Any]:
    recording(Distillation)
    teacher, student = still_encoder(4, 0), still_encoder(2, 5)
    ids = sentences(136, 0)
    settings = DistillSettings(
        epochs=epochs, learning_rate=3e-3, batch_size=16, checkpoint_every=3, seed=7
    )
    report = distill(student, teacher, ids[:120], ids[120:], 0, [1, 3], settings, out)
    return report | {"weights": student.state_dict()}


def run_kda(out: Path, epochs: int) -> dict[str, Any]:
    from transformers import BertForSequenceClassification

    recording(_KDAMethod)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    teacher = BertForSequenceClassification(config).eval()
    table = torch.randn(40, 32, generator=torch.Generator().manual_seed(1))
    student = KDAStudent(teacher, table, "full", heads=8, dropout=0.0)
    ids = sentences(152, 1)
    probs = np.random.default_rng(2).dirichlet(np.ones(3), size=len(ids)).astype(np.float32)
    settings = FitSettings(learning_rate=2e-3, batch_size=16, epochs=epochs, patience=99, seed=3)
    fingerprint = {"toy": "kda"}  # no epochs: a finished run may be extended
    report = fit(
        student, ids[:128], probs[:128], ids[128:], probs[128:], settings, out, 0, fingerprint
    )
    return report.model_dump() | {"weights": student.adapter.state_dict()}


def main(argv: list[str]) -> None:
    kind, out = argv[0], Path(argv[1])
    epochs = int(argv[2]) if len(argv) > 2 else 4
    torch.set_num_threads(1)
    report = {"compress": run_compress, "kda": run_kda}[kind](out, epochs)
    rank = int(os.environ.get("RANK", "0"))
    rows = out.parent / f"{out.name}-rows-{rank}.json"
    rows.write_text(json.dumps(SEEN))
    if rank == 0:
        weights = report.pop("weights")
        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "toy.safetensors"))
        (out / "toy-report.json").write_text(json.dumps(report, default=str))
    leave_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
