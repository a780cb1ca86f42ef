"""Clients that write a whole oversized body before reading the answer (Python's urllib,
requests) must see the JSON 413, not a connection reset: the service reads and discards the
rest of the body, up to a bound, before it answers and closes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.reliability.server import serve

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("declared", [True, False])
def test_urllib_sees_the_413_for_an_oversized_body(built: dict[str, Path], declared: bool) -> None:
    with serve(built["vi-sentiment"].parent, max_body_bytes=4096) as server:
        body = json.dumps(
            {"texts": ["tốt lắm " * 400] * 1000}
        ).encode()  # ~ 4 MB: past any socket buffer
        assert len(body) > 4096
        request = urllib.request.Request(
            f"{server.base}/v1/sentiment",
            data=body
            if declared
            else iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
            headers={"Content-Type": "application/json"}
            | ({} if declared else {"Transfer-Encoding": "chunked"}),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 413
        error = json.loads(info.value.read())["error"]
        assert error["code"] == "body_too_large"
        assert "4096" in error["message"]
        # the server is fine afterwards
        ok = urllib.request.Request(
            f"{server.base}/v1/sentiment",
            data=json.dumps({"text": "tốt"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(ok, timeout=10) as response:
            assert response.status == 200
