"""POST /v1/sentiment, POST /v1/sentiment/{language} and POST /v1/classify/{language}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import LanguagePath, Service, ServiceDep
from app.api.schemas import (
    ClassifyRequest,
    ErrorResponse,
    PredictRequest,
    PredictResponse,
    check_texts,
)
from app.errors import ShuttingDown
from app.model import ServedModel

router = APIRouter(prefix="/v1", tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Body is not valid UTF-8",
        404: "Unknown language or model",
        413: "Body larger than the configured limit",
        415: "Body is not application/json",
        422: "Invalid input: empty text, too many texts, text too long, wrong types",
        429: "Queue full: retry after the Retry-After header",
        503: "Model not ready or the service is shutting down",
        504: "The model did not answer within the request deadline",
    }.items()
}


def refuse_when_draining(service: Service) -> None:
    if service.draining.is_set():
        service.metrics.rejected.labels("shutting_down").inc()
        raise ShuttingDown(
            "the service is shutting down; retry on another replica",
            headers={"Retry-After": str(service.settings.retry_after_s)},
        )


async def _predict(served: ServedModel, body: PredictRequest, service: Service) -> JSONResponse:
    """Answers with a ready-made response: the body is built from trusted values, so FastAPI's
    second validation of a `PredictResponse` would be pure cost on the hot path."""
    refuse_when_draining(service)
    texts = body.all_texts()
    check_texts(texts, service.settings)
    predictions = await served.predict(
        texts, body.truncate, service.settings, service.metrics, service.tokenizer_pool
    )
    manifest = served.manifest
    return JSONResponse(
        {
            "model": manifest.name,
            "version": manifest.version,
            "demo": manifest.demo,
            "results": [vars(p) for p in predictions],
        }
    )


@router.post("/sentiment", response_model=PredictResponse, responses=ERRORS)
async def sentiment(body: PredictRequest, service: ServiceDep) -> JSONResponse:
    """Sentiment of Vietnamese text (the configured sentiment model): one text or a list."""
    return await _predict(service.registry.sentiment(), body, service)


@router.post("/sentiment/{language}", response_model=PredictResponse, responses=ERRORS)
async def sentiment_in(
    body: ClassifyRequest,
    service: ServiceDep,
    language: LanguagePath,
) -> JSONResponse:
    """Sentiment of text in `language`, with the sentiment model serving it (or the one
    `model` names)."""
    return await _predict(
        service.registry.for_language("sentiment", language, body.model), body, service
    )


@router.post("/classify/{language}", response_model=PredictResponse, responses=ERRORS)
async def classify(
    body: ClassifyRequest,
    service: ServiceDep,
    language: LanguagePath,
) -> JSONResponse:
    """Classify text with the classification model serving `language`."""
    return await _predict(service.registry.classifier(language, body.model), body, service)
