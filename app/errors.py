"""Domain errors and the one JSON error shape every failure is answered with.

`{"error": {"code": ..., "message": ..., "details": {...}}, "request_id": ...}`. Codes are stable
strings clients can branch on; messages are for people. A 500 never carries exception text.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with an HTTP status, a stable code and a message safe to show clients."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class InputTooLong(InvalidInput):
    code = "input_too_long"


class UnknownModel(ServiceError):
    status = 404
    code = "unknown_model"


class UnknownLanguage(ServiceError):
    status = 404
    code = "unknown_language"


class QueueFull(ServiceError):
    status = 429
    code = "queue_full"


class ModelNotReady(ServiceError):
    status = 503
    code = "model_not_ready"


class ShuttingDown(ServiceError):
    status = 503
    code = "shutting_down"


class DeadlineExceeded(ServiceError):
    status = 504
    code = "deadline_exceeded"


class InferenceFailed(ServiceError):
    status = 500
    code = "inference_failed"


class BundleError(Exception):
    """A bundle that cannot be served; the message names the bundle and the problem."""

    def __init__(self, bundle: str, problem: str) -> None:
        super().__init__(f"bundle {bundle!r}: {problem}")
        self.bundle = bundle
        self.problem = problem


def error_body(
    code: str, message: str, request_id: str | None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "request_id": request_id,
    }


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # its loc is ("body", character position)
            where = err.get("loc", ("body", "?"))[-1]
            problems.append({"field": "body", "problem": f"not valid JSON (at character {where})"})
            continue
        loc = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
        problems.append({"field": loc or "body", "problem": err.get("msg", "invalid")})
    first = problems[0] if problems else {"field": "body", "problem": "invalid"}
    return f"{first['field']}: {first['problem']}", problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500 and exc.status != 503:  # 503s are expected refusals, not faults
            log.warning("request %s failed: %s", _request_id(request), exc.message)
        return JSONResponse(
            error_body(exc.code, exc.message, _request_id(request), exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, problems = _validation_message(exc)
        return JSONResponse(
            error_body("invalid_input", message, _request_id(request), {"problems": problems}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail), _request_id(request)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in request %s", _request_id(request))
        return JSONResponse(
            error_body("internal_error", "internal server error", _request_id(request)),
            status_code=500,
        )
