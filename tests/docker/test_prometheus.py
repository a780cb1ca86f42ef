"""The monitoring stack against a real Prometheus (Debian's package, on loopback): the repo's
scrape config (only its target rewritten) scrapes the service under traffic, then every
dashboard query and every alert expression is evaluated through Prometheus' HTTP API."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.bundles import copy_bundle, edit_manifest
from tests.docker.deployment_files import (
    ALERTS,
    PROMETHEUS,
    alert_rules,
    dashboard_queries,
    threshold_operand,
)
from tests.services import free_port, running_service, system_binary, wait_for

pytestmark = pytest.mark.slow


def binary(name: str) -> str:
    return system_binary(name, "prometheus", "SMALLGLOT_REQUIRE_PROMETHEUS")


def test_promtool_accepts_the_config_and_rules() -> None:
    promtool = binary("promtool")
    for args in (["check", "config", str(PROMETHEUS)], ["check", "rules", str(ALERTS)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def service(built: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    """The service on a loopback port, with one bundle that fails to load."""
    models = tmp_path / "models"
    models.mkdir()
    for path in built.values():
        shutil.copytree(path, models / path.name)
    broken = copy_bundle(built["sw-topic"], models, "mt-broken")
    edit_manifest(broken, lambda m: m.update(language="mt", labels=["x", "y"]))
    with running_service(models) as base:
        yield base


@pytest.fixture
def prometheus(service: str, tmp_path: Path) -> Iterator[str]:
    config = yaml.safe_load(PROMETHEUS.read_text())
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [service.split("//")[1]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copyfile(ALERTS, tmp_path / ALERTS.name)
    port = free_port()
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/-/ready", 60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def send_traffic(base: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            client.post("/v1/sentiment", json={"text": "Sản phẩm rất tốt"})
            client.post("/v1/sentiment", json={"texts": ["tốt " * 40, "không", "ok"]})
            client.post("/v1/classify/sw", json={"text": "Timu imeshinda"})
            client.post("/v1/sentiment", content=b"x", headers={"content-type": "text/plain"})
            client.get("/v1/models")
            time.sleep(0.05)


def query(prometheus: str, expr: str) -> list[dict]:  # type: ignore[type-arg]
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200, (expr, body)
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def test_every_dashboard_and_alert_query_has_data(service: str, prometheus: str) -> None:
    stop = threading.Event()
    traffic = threading.Thread(target=send_traffic, args=(service, stop), daemon=True)
    traffic.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # enough scrapes for 1m rates and quantiles
            scrapes = query(prometheus, 'count_over_time(up{job="smallglot"}[1m])')
            if scrapes and float(scrapes[0]["value"][1]) >= 4:
                break
            time.sleep(1)
        else:
            raise AssertionError("Prometheus did not scrape the service 4 times in 90 s")
        assert query(prometheus, 'up{job="smallglot"}')[0]["value"][1] == "1"
        empty = [
            (title, expr) for title, expr in dashboard_queries() if not query(prometheus, expr)
        ]
        assert not empty, f"dashboard queries without data: {empty}"
        for rule in alert_rules():
            query(prometheus, rule["expr"])  # valid even when it does not fire
            assert query(prometheus, threshold_operand(rule["expr"])), rule["alert"]
        firing = query(
            prometheus,
            next(r["expr"] for r in alert_rules() if r["alert"] == "SmallglotModelNotReady"),
        )
        assert [s["metric"]["model"] for s in firing] == ["mt-broken"]
        rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {r["name"]: r["health"] for g in rules for r in g["rules"]} == {
            r["alert"]: "ok" for r in alert_rules()
        }
    finally:
        stop.set()
        traffic.join(timeout=15)
