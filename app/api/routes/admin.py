"""POST /admin/reload: re-read the models directory without a restart (also on SIGHUP).
Off unless SMALLGLOT_ADMIN_TOKEN is set; then it needs `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Header
from starlette.exceptions import HTTPException

from app.api.deps import ServiceDep
from app.api.schemas import ErrorResponse
from app.registry import ReloadReport

router = APIRouter(prefix="/admin", tags=["operations"])


@router.post(
    "/reload",
    response_model=ReloadReport,
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def reload(
    service: ServiceDep, authorization: str | None = Header(default=None)
) -> ReloadReport:
    """Load new or changed bundles, keep a working one when its replacement is broken."""
    token = service.settings.admin_token
    if not token:
        raise HTTPException(404, "Not Found")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return await service.registry.reload()
