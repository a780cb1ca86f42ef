"""The edge, as plain ASGI (cheaper than BaseHTTPMiddleware on the hot path): request ids,
body limits, content type and UTF-8 checks for JSON posts, and the request metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time

from fastapi import FastAPI
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.logs import REQUEST_ID
from app.metrics import Metrics
from app.settings import Settings

access = logging.getLogger("smallglot.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# how much of an oversized body is read and dropped before the 413 is sent
DISCARD_BYTES = 64 * 1024 * 1024
DISCARD_SECONDS = 5.0
# Request ids need to be unique, not secret: a seeded PRNG costs far less than uuid4's
# system-entropy read, which showed up in profiles of the request path.
_ids = random.Random()


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, api: FastAPI) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.api = api
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            if scope["method"] == "POST" and scope["path"].startswith("/v1/"):
                try:
                    body = await self._read_json_body(scope, receive)
                except _Reject as reject:
                    self.metrics.rejected.labels(reject.code).inc()
                    await _send_error(send_with_id, reject, request_id)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            route = self._route(scope)
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_latency.labels(route, scope["method"]).observe(elapsed)
            access.info("%s %s %d %.1f ms", scope["method"], route, status, 1000 * elapsed)
            REQUEST_ID.reset(token)

    async def _read_json_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _discard_rest(receive)
            raise _Reject(
                413,
                "body_too_large",
                f"body of {int(declared)} bytes exceeds the limit of {limit} bytes",
            )
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            shown = content_type.decode("latin-1") or "none"
            raise _Reject(
                415,
                "unsupported_media_type",
                f"content type {shown!r} is not supported; send application/json",
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _discard_rest(receive)
                raise _Reject(413, "body_too_large", f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject(
                400, "invalid_utf8", f"body is not valid UTF-8 (bad byte at offset {exc.start})"
            ) from None
        return body

    def _route(self, scope: Scope) -> str:
        """The route template (bounded label values), also for requests refused here."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        if self._templates is None:
            self._templates = [
                (compile_path(path)[0], path) for path in self.api.openapi()["paths"]
            ]
        for regex, template in self._templates:
            if regex.match(scope["path"]):
                return template
        return "unmatched"


async def _discard_rest(receive: Receive) -> None:
    """Read and drop what the client is still sending, up to DISCARD_BYTES or DISCARD_SECONDS,
    before answering an oversized body: a client that writes its whole body before reading
    (Python's urllib, requests) then sees the 413 instead of a connection reset (the lingering
    close nginx does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DISCARD_SECONDS
    drained = 0
    while drained <= DISCARD_BYTES:
        try:
            message = await asyncio.wait_for(receive(), deadline - loop.time())
        except TimeoutError:
            return
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
            break
    return f"{_ids.getrandbits(128):032x}"


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body to the app, then the client's own messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, reject: _Reject, request_id: str) -> None:
    payload = json.dumps(
        error_body(reject.code, reject.message, request_id), separators=(",", ":")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": reject.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
