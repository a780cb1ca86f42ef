"""The endpoint a user writes in five minutes: FastAPI, a sync handler (FastAPI runs it in its
thread pool), one onnxruntime call per request, no batching.

    python benchmarks/peer_apps/naive.py BUNDLE PORT"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.peer_apps.core import Classifier, texts_of

classifier = Classifier(Path(sys.argv[1]))
app = FastAPI()


@app.post("/v1/sentiment")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    return {"results": classifier(texts_of(body))}


@app.get("/readyz")
def ready() -> dict[str, str]:
    return {"status": "ready"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
