"""The per-model circuit, reloading bundles, and what the logs may and may not hold."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from tests.app.conftest import make_client
from tests.bundles import copy_bundle, edit_manifest


def test_circuit_trips_after_repeated_failures_and_recovers(built: dict[str, Path]) -> None:
    with make_client(
        built["vi-sentiment"].parent,
        models=["vi-sentiment"],
        circuit_failures=3,
        circuit_cooldown_s=0.3,
    ) as client:
        served = client.app.state.service.registry.get("vi-sentiment")  # type: ignore[attr-defined]
        working = served.runtime.infer

        def broken(ids, mask):  # type: ignore[no-untyped-def]
            raise RuntimeError("device lost: secret detail")

        served.runtime.infer = broken
        served.batcher._infer = broken
        for _ in range(3):
            response = client.post("/v1/sentiment", json={"text": "tốt"})
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "inference_failed"
            assert "secret" not in response.text
        refused = client.post("/v1/sentiment", json={"text": "tốt"})
        assert refused.status_code == 503
        assert "out of service" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["models"]["vi-sentiment"] == "tripped"
        assert 'smallglot_model_ready{model="vi-sentiment"} 0.0' in client.get("/metrics").text
        served.batcher._infer = working
        time.sleep(0.35)  # the cooldown passes: the next request is let through
        assert client.post("/v1/sentiment", json={"text": "tốt"}).status_code == 200
        assert client.get("/readyz").status_code == 200
        assert 'smallglot_model_ready{model="vi-sentiment"} 1.0' in client.get("/metrics").text


def test_reload_adds_keeps_and_removes_bundles(built: dict[str, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(built["vi-sentiment"], models / "vi-sentiment")
    with make_client(models, admin_token="s3cret") as client:
        auth = {"authorization": "Bearer s3cret"}
        assert client.post("/admin/reload").status_code == 401
        assert (
            client.post("/admin/reload", headers={"authorization": "Bearer no"}).status_code == 401
        )
        copy_bundle(built["sw-topic"], models, "sw-topic")
        report = client.post("/admin/reload", headers=auth).json()
        assert report == {
            "loaded": ["sw-topic"],
            "unchanged": ["vi-sentiment"],
            "removed": [],
            "failed": {},
        }
        assert client.post("/v1/classify/sw", json={"text": "x"}).status_code == 200
        # A broken replacement does not take the working version down.
        edit_manifest(models / "sw-topic", lambda m: m.update(labels=["a", "b"]))
        report = client.post("/admin/reload", headers=auth).json()
        assert "lists 2 labels" in report["failed"]["sw-topic"]
        assert client.post("/v1/classify/sw", json={"text": "x"}).status_code == 200
        assert client.get("/readyz").status_code == 200
        shutil.rmtree(models / "sw-topic")
        report = client.post("/admin/reload", headers=auth).json()
        assert report["removed"] == ["sw-topic"]
        assert client.post("/v1/classify/sw", json={"text": "x"}).status_code == 404
        assert client.post("/v1/sentiment", json={"text": "x"}).status_code == 200


def test_reload_is_off_without_a_token(built: dict[str, Path]) -> None:
    with make_client(built["vi-sentiment"].parent) as client:
        assert client.post("/admin/reload").status_code == 404


def test_logs_carry_request_ids_but_never_texts(
    built: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with make_client(built["vi-sentiment"].parent, log_level="debug") as client:
        client.post(
            "/v1/sentiment",
            json={"texts": ["bí mật của tôi", "x"]},
            headers={"x-request-id": "req-42"},
        )
        client.post("/v1/sentiment", content=b"\xff", headers={"content-type": "application/json"})
    access = [r for r in caplog.records if r.name == "smallglot.access"]
    assert any(
        r.request_id == "req-42" and "POST /v1/sentiment 200" in r.getMessage() for r in access
    )
    assert all("bí mật" not in r.getMessage() for r in caplog.records)
