"""LitServe with its request batching (LitAPI `max_batch_size`, `batch_timeout`), one worker
per core (`workers_per_device`, its CPU scaling knob).

    python benchmarks/peer_apps/litserve_app.py BUNDLE PORT MAX_BATCH_REQUESTS WORKERS"""

import sys
from pathlib import Path
from typing import Any

import litserve as ls

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.peer_apps.core import Classifier, classify_requests, texts_of


class Sentiment(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.classifier = Classifier(Path(sys.argv[1]))

    def decode_request(self, request: dict[str, Any]) -> list[str]:
        return texts_of(request)

    def batch(self, inputs: list[list[str]]) -> list[list[str]]:
        return inputs

    def predict(self, requests: list[list[str]]) -> list[list[dict[str, Any]]]:
        return classify_requests(self.classifier, requests)

    def unbatch(self, output: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        return output

    def encode_response(self, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"results": output}


if __name__ == "__main__":
    api = Sentiment(max_batch_size=int(sys.argv[3]), batch_timeout=0.005, api_path="/v1/sentiment")
    server = ls.LitServer(
        api, accelerator="cpu", workers_per_device=int(sys.argv[4]), healthcheck_path="/readyz"
    )
    server.run(host="127.0.0.1", port=int(sys.argv[2]), generate_client_file=False)
