"""Compose and Kubernetes files against their published schemas, and against the app: same
ports, real settings, real health paths, real metric names, one datasource."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient
from kubernetes_validate.utils import validate as validate_k8s

from app.main import create_app
from app.settings import Settings
from tests.docker.deployment_files import (
    COMPOSE_FILES,
    DOCKER,
    K8S_FILES,
    PROMETHEUS,
    ROOT,
    alert_rules,
    dashboard,
    dashboard_queries,
    load_yaml,
    metric_names,
)

APP_PORT = 8000  # `python -m app` default, and every file below
SETTINGS = {f"SMALLGLOT_{name.upper()}" for name in Settings.model_fields}


def compose_schema() -> dict:  # type: ignore[type-arg]
    path = resources.files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_follow_the_compose_spec(path: Path) -> None:
    jsonschema.validate(load_yaml(path), compose_schema())


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_manifests_follow_the_api_schemas(path: Path) -> None:
    for document in yaml_documents(path):
        validate_k8s(document, "1.30.0", strict=True)


def yaml_documents(path: Path) -> list[dict]:  # type: ignore[type-arg]
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_service_agrees_with_the_app() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    service = compose["services"]["smallglot"]
    assert any(str(p).endswith(f":{APP_PORT}") for p in service["ports"])
    assert set(service["environment"]) <= SETTINGS
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert "./models:/models:ro" in service["volumes"]
    assert service["environment"]["SMALLGLOT_MODELS_DIR"] == "/models"
    assert compose["services"]["prometheus"]["depends_on"]["smallglot"]["condition"] == (
        "service_healthy"
    )
    assert compose["services"]["grafana"]["depends_on"]["prometheus"]["condition"] == (
        "service_healthy"
    )
    assert set(compose["volumes"]) == {"prometheus-data", "grafana-data"}
    gpu = load_yaml(DOCKER / "compose.gpu.yml")["services"]["smallglot"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_agree_with_the_app(name: str) -> None:
    text = (DOCKER / name).read_text()
    assert f"EXPOSE {APP_PORT}" in text
    assert "/healthz" in text
    assert re.search(r"^USER smallglot$", text, re.M)  # never root
    instructions = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "torch" not in instructions
    assert "train" not in instructions
    assert text.count("FROM ") == 2  # multi-stage
    for variable in re.findall(r"\b(SMALLGLOT_[A-Z_]+)=", text):
        assert variable in SETTINGS, variable
    extra = "gpu" if name.endswith("gpu") else "serve"
    assert f'".[{extra}]"' in text


def test_kubernetes_deployment_agrees_with_the_app() -> None:
    (deployment,) = yaml_documents(DOCKER / "k8s" / "deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == APP_PORT
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {e["name"] for e in container["env"]} <= SETTINGS
    (hpa,) = yaml_documents(DOCKER / "k8s" / "hpa.yaml")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "smallglot_queue_depth"


def test_prometheus_scrapes_the_app_port_and_path() -> None:
    (job,) = load_yaml(PROMETHEUS)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"smallglot:{APP_PORT}"]


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = load_yaml(DOCKER / "grafana/provisioning/datasources/prometheus.yml")
    uid = provisioned["datasources"][0]["uid"]
    board = dashboard()
    references = [p["datasource"] for p in board["panels"]]
    references += [t["datasource"] for p in board["panels"] for t in p["targets"]]
    references += [v["datasource"] for v in board["templating"]["list"]]
    assert all(r == {"type": "prometheus", "uid": uid} for r in references)
    titles = " | ".join(p["title"] for p in board["panels"])
    for needed in (
        "Request rate",
        "latency",
        "Queue wait",
        "inference",
        "Batch size",
        "Padding",
        "Queue depth",
        "In-flight",
        "Rejections",
        "Input length",
        "Models",
    ):
        assert needed in titles, needed


def test_every_metric_the_dashboard_and_alerts_name_exists(built: dict[str, Path]) -> None:
    settings = Settings(models_dir=built["vi-sentiment"].parent)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/sentiment", json={"text": "tốt"})
        client.post("/v1/sentiment", content=b"x", headers={"content-type": "text/plain"})
        exposed = client.get("/metrics").text
    names = set()
    for _, expr in dashboard_queries():
        names |= metric_names(expr)
    for rule in alert_rules():
        names |= metric_names(rule["expr"])
    assert len(names) >= 12
    for name in sorted(names):
        assert re.search(rf"^{name}(_bucket|_sum|_count|_total)?[{{ ]", exposed, re.M), name
