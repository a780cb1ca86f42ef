"""The API documentation works without internet: /docs and /redoc load Swagger UI and ReDoc
from the service itself, never from a CDN (an air-gapped deployment renders them too)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.services import running_service, system_binary

BROWSER = "chromium-headless-shell"  # Debian's package of the same name (make browser)
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_documentation_pages_reference_only_the_service(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "cdn." not in html
    assert not re.search(r"https?://", html), "the page names an external URL"
    found = references(html)
    assert any(url.endswith(".js") for url in found)
    for url in found:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000 or url == "/openapi.json", url


@pytest.fixture
def service(built: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    models = tmp_path / "models"
    shutil.copytree(built["vi-sentiment"], models / "vi-sentiment")
    with running_service(models) as base:
        yield base


def browser() -> str:
    return system_binary(BROWSER, "browser", "SMALLGLOT_REQUIRE_BROWSER")


@pytest.mark.slow
def test_swagger_ui_renders_the_operations_in_a_browser_without_internet(service: str) -> None:
    """A headless Chromium with every host but the service's loopback address unreachable
    renders the operations list (the DOM after Swagger UI's scripts ran)."""
    command = [
        browser(),
        "--no-sandbox",
        "--disable-gpu",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"{service}/docs",
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    assert 'class="opblock-summary-path"' in dom or "opblock-summary-path" in dom, dom[-2000:]
    for path in ("/v1/sentiment", "/v1/classify/{language}", "/v1/models"):
        assert path in dom
    assert httpx.get(f"{service}/redoc", timeout=10).status_code == 200
