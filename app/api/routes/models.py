"""GET /v1/models: what is served, how, and how well it was evaluated."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ServiceDep
from app.api.schemas import ModelInfo, ModelList
from app.model import ServedModel

router = APIRouter(prefix="/v1", tags=["models"])


def describe(served: ServedModel) -> ModelInfo:
    info = ModelInfo(name=served.key, status=served.status, error=served.error)
    if served.bundle is not None:
        manifest = served.bundle.manifest
        info.version, info.task, info.language = manifest.version, manifest.task, manifest.language
        info.labels, info.max_length = list(manifest.labels), manifest.max_length
        info.demo, info.description = manifest.demo, manifest.description
        info.evaluation = manifest.evaluation
        info.default, info.label_scheme = manifest.default, manifest.label_scheme
    if served.runtime is not None:
        runtime = served.runtime.info
        info.variant, info.provider, info.io_binding = (
            runtime.variant,
            runtime.provider,
            runtime.io_binding,
        )
    return info


@router.get("/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> ModelList:
    """Every configured model, failed ones included (with the reason)."""
    return ModelList(models=[describe(m) for m in service.registry])
