"""BentoML with adaptive batching: a batchable API (`max_batch_size`, `max_latency_ms`), one
worker per core. Batchable APIs take the batch dimension in the body: {"texts": [...]}.

    BENCH_BUNDLE=... BENCH_BATCH=32 BENCH_WORKERS=2 \
        bentoml serve benchmarks.peer_apps.bentoml_app:Sentiment --port PORT"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import bentoml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.peer_apps.core import Classifier


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "1")), traffic={"timeout": 60})
class Sentiment:
    def __init__(self) -> None:
        self.classifier = Classifier(Path(os.environ["BENCH_BUNDLE"]))

    @bentoml.api(
        route="/v1/sentiment",
        batchable=True,
        max_batch_size=int(os.environ.get("BENCH_BATCH", "32")),
        max_latency_ms=1000,
    )
    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        return self.classifier(texts)
