"""Every endpoint and every kind of bad input, through the real app and real tiny bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import make_client
from tests.bundles import copy_bundle, edit_manifest

LABELS = ["negative", "neutral", "positive"]


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


def test_sentiment_one_text(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"text": "Sản phẩm rất tốt"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "vi-sentiment"
    assert body["version"] == "1.2.3"
    assert body["demo"] is False
    (result,) = body["results"]
    assert result["label"] in LABELS
    assert list(result["scores"]) == LABELS
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["label"] == max(result["scores"], key=result["scores"].get)
    assert result["truncated"] is False
    assert result["tokens"] > 2


def test_sentiment_many_texts_keep_order(client: TestClient) -> None:
    texts = ["tốt", "không tốt lắm", "x" * 10, "Rất tốt!"]
    one_by_one = [
        client.post("/v1/sentiment", json={"text": t}).json()["results"][0] for t in texts
    ]
    together = client.post("/v1/sentiment", json={"texts": texts}).json()["results"]
    assert [r["tokens"] for r in together] == [r["tokens"] for r in one_by_one]
    for a, b in zip(together, one_by_one, strict=True):
        assert a["label"] == b["label"]
        for label in LABELS:
            assert a["scores"][label] == pytest.approx(b["scores"][label], abs=1e-3)


def test_truncation_flag_and_refusal(client: TestClient) -> None:
    long_text = "tốt " * 60  # far more than max_length=32 tokens
    cut = client.post("/v1/sentiment", json={"texts": ["ok", long_text]}).json()["results"]
    assert cut[0]["truncated"] is False
    assert cut[1]["truncated"] is True
    assert cut[1]["tokens"] > 32
    error = _error(
        client.post("/v1/sentiment", json={"texts": ["ok", long_text], "truncate": False}),
        422,
        "input_too_long",
    )
    assert "texts[1]" in error["message"]
    assert error["details"]["index"] == 1
    assert error["details"]["tokens"] > 32
    assert error["details"]["max_tokens"] == 32


def test_classify_routes_by_language_code(client: TestClient) -> None:
    for code in ("sw", "swa", "swh", "SW", "sw-KE"):
        response = client.post(f"/v1/classify/{code}", json={"text": "Timu imeshinda"})
        assert response.status_code == 200, (code, response.text)
        assert response.json()["model"] in {"sw-topic", "sw-topic-b"}


def test_classify_picks_model_by_name(client: TestClient) -> None:
    body = client.post("/v1/classify/sw", json={"text": "x", "model": "sw-topic"}).json()
    assert body["model"] == "sw-topic"
    assert list(body["results"][0]["scores"]) == ["health", "politics", "science", "sports"]
    body = client.post("/v1/classify/swh", json={"text": "x", "model": "sw-topic-b"}).json()
    assert list(body["results"][0]["scores"]) == ["a", "b"]
    error = _error(
        client.post("/v1/classify/sw", json={"text": "x", "model": "vi-sentiment"}),
        404,
        "unknown_model",
    )
    assert error["details"]["models"] == ["sw-topic", "sw-topic-b"]


def test_unknown_language_lists_languages(client: TestClient) -> None:
    error = _error(client.post("/v1/classify/fr", json={"text": "x"}), 404, "unknown_language")
    assert "'fr'" in error["message"]
    assert error["details"]["languages"] == ["mt", "sw"]
    _error(client.post("/v1/classify/not-a-language!", json={"text": "x"}), 404, "unknown_language")


def test_failed_bundle_answers_503_with_reason(client: TestClient) -> None:
    response = client.post("/v1/classify/mlt", json={"text": "x"})
    error = _error(response, 503, "model_not_ready")
    assert "mt-broken" in error["message"]
    assert "labels" in error["message"]
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": ""}, "texts[0] is empty"),
        ({"text": " \n\t "}, "texts[0] is empty"),
        ({"texts": ["ok", "  "]}, "texts[1] is empty"),
        ({"texts": []}, "`texts` is empty"),
        ({}, "exactly one of `text` or `texts`"),
        ({"text": "a", "texts": ["b"]}, "exactly one of `text` or `texts`"),
        ({"texts": ["a"] * 9}, "9 texts sent; at most 8"),
        ({"text": "a" * 301}, "texts[0] has 301 characters; at most 300"),
        ({"text": 5}, "text: Input should be a valid string"),
        ({"texts": "abc"}, "texts: Input should be a valid list"),
        ({"texts": ["a", 1]}, "texts.1: Input should be a valid string"),
        ({"text": "a", "truncate": "yes"}, "truncate: Input should be a valid boolean"),
        ({"text": "a", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"text": "a\ud800b"}, "texts[0] is not valid Unicode"),
        ([1, 2], "Input should be a valid dictionary"),
    ],
)
def test_bad_input_is_422_naming_the_problem(
    client: TestClient, body: object, fragment: str
) -> None:
    raw = json.dumps(body).encode()  # ASCII-escaped, so a lone surrogate can travel
    response = client.post(
        "/v1/sentiment", content=raw, headers={"content-type": "application/json"}
    )
    error = _error(response, 422, "invalid_input")
    assert fragment in error["message"]


def test_malformed_requests(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    error = _error(
        client.post("/v1/sentiment", content=b'{"text": ', headers=headers), 422, "invalid_input"
    )
    assert "JSON" in error["message"]
    error = _error(
        client.post("/v1/sentiment", content=b'{"text": "\xff\xfe"}', headers=headers),
        400,
        "invalid_utf8",
    )
    assert "offset 10" in error["message"]
    _error(
        client.post("/v1/sentiment", content=b"text=hi", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    _error(client.post("/v1/sentiment", content=b'{"text": "hi"}'), 415, "unsupported_media_type")
    error = _error(client.post("/v1/sentiment", json={"text": "a" * 5000}), 413, "body_too_large")
    assert "4096" in error["message"]
    _error(client.get("/v1/sentiment"), 405, "method_not_allowed")
    _error(client.get("/nope"), 404, "not_found")


def test_streamed_body_over_limit_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/v1/sentiment", content=chunks(), headers={"content-type": "application/json"}
    )
    _error(response, 413, "body_too_large")


def test_request_id_is_honoured_or_generated(client: TestClient) -> None:
    response = client.post("/v1/sentiment", json={"text": "x"}, headers={"x-request-id": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    bad = client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"


def test_models_listing(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"vi-sentiment", "sw-topic", "sw-topic-b", "mt-broken"}
    vi = models["vi-sentiment"]
    assert vi["status"] == "ready"
    assert vi["task"] == "sentiment"
    assert vi["language"] == "vi"
    assert vi["labels"] == LABELS
    assert vi["variant"] == "int8"  # CPU, int8 present and enabled
    assert vi["provider"] == "CPUExecutionProvider"
    assert vi["evaluation"] == [{"dataset": "unit", "accuracy": 0.5, "macro_f1": 0.4, "n": 10}]
    assert models["sw-topic"]["variant"] == "fp32"
    broken = models["mt-broken"]
    assert broken["status"] == "failed"
    assert "lists 2 labels" in broken["error"]


def test_health_and_readiness(client: TestClient, built: dict[str, Path]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert set(body["reasons"]) == {"mt-broken"}
    assert body["models"]["vi-sentiment"] == "ready"
    good = built["vi-sentiment"].parent
    with make_client(good) as ready_client:
        response = ready_client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["ready"] is True


def test_no_bundles_is_not_ready(tmp_path: Path) -> None:
    with make_client(tmp_path) as empty:
        response = empty.get("/readyz")
        assert response.status_code == 503
        assert "no bundles" in next(iter(response.json()["reasons"].values()))
        _error(empty.post("/v1/sentiment", json={"text": "x"}), 404, "unknown_model")


def test_settings_choose_variant_and_sentiment_model(built: dict[str, Path]) -> None:
    root = built["vi-sentiment"].parent
    with make_client(
        root, use_int8=False, sentiment_model="vi-sentiment", models=["vi-sentiment"]
    ) as fp32_client:
        models = fp32_client.get("/v1/models").json()["models"]
        assert [(m["name"], m["variant"]) for m in models] == [("vi-sentiment", "fp32")]
        assert fp32_client.post("/v1/sentiment", json={"text": "x"}).status_code == 200


def test_a_trained_model_is_preferred_to_the_demo(built: dict[str, Path], tmp_path: Path) -> None:
    demo = copy_bundle(built["vi-sentiment"], tmp_path, "a-demo")  # sorts first
    edit_manifest(demo, lambda m: m.update(demo=True))
    shutil.copytree(built["vi-sentiment"], tmp_path / "vi-sentiment")
    with make_client(tmp_path) as both:
        body = both.post("/v1/sentiment", json={"text": "x"}).json()
        assert (body["model"], body["demo"]) == ("vi-sentiment", False)
    shutil.rmtree(tmp_path / "vi-sentiment")
    with make_client(tmp_path) as only_demo:
        body = only_demo.post("/v1/sentiment", json={"text": "x"}).json()
        assert (body["model"], body["demo"]) == ("a-demo", True)


def test_openapi_documents_examples_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/sentiment"]["post"]
    assert {"404", "413", "415", "422", "429", "503", "504"} <= set(post["responses"])
    schema = spec["components"]["schemas"]["PredictRequest"]
    assert schema["examples"]
    assert client.get("/docs").status_code == 200
