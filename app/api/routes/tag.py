"""POST /v1/tag/{language}: token classification (part-of-speech tags, named entities)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import LanguagePath, ServiceDep
from app.api.routes.predict import ERRORS, refuse_when_draining
from app.api.schemas import TagRequest, TagResponse, check_texts
from app.tagging import WordInput

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post("/tag/{language}", response_model=TagResponse, responses=ERRORS)
async def tag(
    body: TagRequest,
    service: ServiceDep,
    language: LanguagePath,
) -> JSONResponse:
    """Tag every word of each text with the tagging model serving `language` (the language's
    default, or the one `model` names): its tag and probability, and for NER models the
    entities with their character offsets."""
    served = service.registry.tagger(language, body.model)
    refuse_when_draining(service)
    if body.words is not None:
        check_texts([" ".join(words) for words in body.words], service.settings)
        items = [WordInput(list(words)) for words in body.words]
    else:
        texts = [body.text] if body.text is not None else list(body.texts or [])
        check_texts(texts, service.settings)
        items = [WordInput.from_text(text) for text in texts]
    tagged = await served.tag(
        items, body.truncate, service.settings, service.metrics, service.tokenizer_pool
    )
    manifest = served.manifest
    results = [
        {
            "words": [asdict(w) for w in t.words] if body.include_words else None,
            "entities": None if t.entities is None else [asdict(e) for e in t.entities],
            "truncated": t.truncated,
            "tokens": t.tokens,
        }
        for t in tagged
    ]
    return JSONResponse(
        {
            "model": manifest.name,
            "version": manifest.version,
            "demo": manifest.demo,
            "label_scheme": manifest.label_scheme,
            "results": results,
        }
    )
