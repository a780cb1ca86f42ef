"""Ray Serve: a FastAPI ingress deployment whose requests go through `@serve.batch`, one
replica per core.

    python benchmarks/peer_apps/ray_app.py BUNDLE PORT MAX_BATCH_REQUESTS REPLICAS"""

import sys
import time
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI, Request
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.peer_apps.core import Classifier, classify_requests, texts_of

BUNDLE, PORT, BATCH, REPLICAS = (
    Path(sys.argv[1]),
    int(sys.argv[2]),
    int(sys.argv[3]),
    int(sys.argv[4]),
)
app = FastAPI()


@serve.deployment(
    num_replicas=REPLICAS, max_ongoing_requests=512, ray_actor_options={"num_cpus": 1}
)
@serve.ingress(app)
class Sentiment:
    def __init__(self) -> None:
        self.classifier = Classifier(BUNDLE)

    @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=0.005)
    async def classify(self, requests: list[list[str]]) -> list[list[dict[str, Any]]]:
        return classify_requests(self.classifier, requests)

    @app.post("/v1/sentiment")
    async def predict(self, request: Request) -> dict[str, Any]:
        return {"results": await self.classify(texts_of(await request.json()))}

    @app.get("/readyz")
    def ready(self) -> dict[str, str]:
        return {"status": "ready"}


if __name__ == "__main__":
    ray.init(num_cpus=REPLICAS, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(Sentiment.bind(), route_prefix="/")
    while True:
        time.sleep(3600)
