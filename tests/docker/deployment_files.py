"""The deployment files, parsed, and the PromQL they contain."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILES = [ROOT / "docker-compose.yml", DOCKER / "compose.gpu.yml"]
K8S_FILES = sorted((DOCKER / "k8s").glob("*.yaml"))
DASHBOARD = DOCKER / "grafana" / "dashboards" / "smallglot.json"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
# Grafana variables, given the values a Prometheus query needs.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana variables substituted) for every target."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], expr))
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def threshold_operand(expr: str) -> str:
    """The measured side of `<measure> <op> <number>`: it must have data even when the
    alert does not fire."""
    match = re.fullmatch(r"(.*?)\s*(?:>|<|>=|<=|==|!=)\s*[0-9.]+\s*", expr, flags=re.S)
    return match.group(1) if match else expr


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(smallglot_[a-z_]+?)(?:_bucket|_sum|_count|_total)?\b", expr))
