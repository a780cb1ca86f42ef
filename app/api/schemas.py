"""Request and response bodies. Structure is checked here; limits that depend on settings
(texts per request, characters per text) are checked in `check_texts`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from app.errors import InvalidInput
from app.settings import Settings

_SENTIMENT_EXAMPLES: list[Any] = [
    {"text": "Sản phẩm rất tốt, giao hàng nhanh."},
    {"texts": ["Món ăn ngon tuyệt!", "Phục vụ quá chậm, tôi sẽ không quay lại."], "truncate": True},
]


# What the validators below enforce, said in the OpenAPI schema too (the limits that come
# from settings are added by `document_limits`).
_NON_BLANK: dict[str, Any] = {"minLength": 1, "pattern": r"\S"}
_ONE_OF: list[Any] = [{"required": ["text"]}, {"required": ["texts"]}]


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": _SENTIMENT_EXAMPLES, "oneOf": _ONE_OF},
    )

    text: Annotated[StrictStr | None, WithJsonSchema({"type": "string", **_NON_BLANK})] = Field(
        default=None, description="One text. Give `text` or `texts`."
    )
    texts: Annotated[
        list[StrictStr] | None,
        WithJsonSchema({"type": "array", "minItems": 1, "items": {"type": "string", **_NON_BLANK}}),
    ] = Field(default=None, description="Several texts; results come back in the same order.")
    truncate: StrictBool = Field(
        default=True,
        description="Cut texts longer than the model's max_length (result says truncated: "
        "true). With false, such a text is a 422 naming its index and token count.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("text", "texts", "model"):
                if key in data and data[key] is None:
                    raise ValueError(f"`{key}` is null; leave it out instead")
        return data

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` or `texts`")
        if self.texts is not None and not self.texts:
            raise ValueError("`texts` is empty")
        return self

    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class ClassifyRequest(PredictRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": ["Timu ya taifa imeshinda mechi ya jana."]}],
            "oneOf": _ONE_OF,
        },
    )

    model: Annotated[StrictStr | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="Pick one of several models serving this language."
    )


_TAG_EXAMPLES: list[Any] = [
    {"text": "Rais Samia Suluhu Hassan alitembelea Dodoma jana."},
    {"texts": ["Timu ya taifa imeshinda.", "Mvua kubwa inanyesha Mombasa."], "model": "sw-ner"},
    {"words": [["Rais", "Samia", "alitembelea", "Dodoma", "."]], "include_words": False},
]
_ONE_OF_TAG: list[Any] = [{"required": ["text"]}, {"required": ["texts"]}, {"required": ["words"]}]


class TagRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": _TAG_EXAMPLES, "oneOf": _ONE_OF_TAG}
    )

    text: Annotated[StrictStr | None, WithJsonSchema({"type": "string", **_NON_BLANK})] = Field(
        default=None,
        description="One text, split into words here (letters/digits runs, each punctuation "
        "mark on its own). Give `text`, `texts` or `words`.",
    )
    texts: Annotated[
        list[StrictStr] | None,
        WithJsonSchema({"type": "array", "minItems": 1, "items": {"type": "string", **_NON_BLANK}}),
    ] = Field(default=None, description="Several texts; results come back in the same order.")
    words: Annotated[
        list[list[StrictStr]] | None,
        WithJsonSchema(
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", **_NON_BLANK},
                },
            }
        ),
    ] = Field(
        default=None,
        description="Texts already split into words, for callers who tokenise themselves; "
        "results carry word indices instead of character offsets.",
    )
    model: Annotated[StrictStr | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="Pick one of the language's tagging models (e.g. `sw-ner`)."
    )
    truncate: StrictBool = Field(
        default=True,
        description="Tag the words that fit in the model's max_length and mark the rest "
        "(tag null, result truncated: true). With false, such a text is a 422 naming it.",
    )
    include_words: StrictBool = Field(
        default=True, description="Return every word with its tag (entities come regardless)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("text", "texts", "words", "model"):
                if key in data and data[key] is None:
                    raise ValueError(f"`{key}` is null; leave it out instead")
        return data

    @model_validator(mode="after")
    def _one_of(self) -> TagRequest:
        given = [k for k in ("text", "texts", "words") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `text`, `texts` or `words`")
        if self.texts is not None and not self.texts:
            raise ValueError("`texts` is empty")
        if self.words is not None:
            if not self.words:
                raise ValueError("`words` is empty")
            for index, words in enumerate(self.words):
                if not words:
                    raise ValueError(f"words[{index}] is empty")
                for position, word in enumerate(words):
                    if not word.strip():
                        raise ValueError(f"words[{index}][{position}] is empty or only whitespace")
        return self


def document_limits(openapi: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Write this deployment's limits into the request schemas of an OpenAPI document."""
    schemas = openapi.get("components", {}).get("schemas", {})
    words = schemas.get("TagRequest", {}).get("properties", {}).get("words")
    if words:
        words["maxItems"] = settings.max_texts_per_request
    for name in ("PredictRequest", "ClassifyRequest", "TagRequest"):
        properties = schemas.get(name, {}).get("properties", {})
        if "text" in properties:
            properties["text"]["maxLength"] = settings.max_chars_per_text
        if "texts" in properties:
            properties["texts"]["maxItems"] = settings.max_texts_per_request
            properties["texts"]["items"]["maxLength"] = settings.max_chars_per_text
    return openapi


def check_texts(texts: list[str], settings: Settings) -> None:
    """Refuse, naming the first offending index, what the service will not take."""
    if len(texts) > settings.max_texts_per_request:
        raise InvalidInput(
            f"{len(texts)} texts sent; at most {settings.max_texts_per_request} per request",
            details={"texts": len(texts), "max_texts": settings.max_texts_per_request},
        )
    for index, text in enumerate(texts):
        if not text.strip():
            raise InvalidInput(
                f"texts[{index}] is empty or only whitespace", details={"index": index}
            )
        if len(text) > settings.max_chars_per_text:
            raise InvalidInput(
                f"texts[{index}] has {len(text)} characters; at most "
                f"{settings.max_chars_per_text} per text",
                details={
                    "index": index,
                    "chars": len(text),
                    "max_chars": settings.max_chars_per_text,
                },
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"texts[{index}] is not valid Unicode (it holds a lone surrogate)",
                details={"index": index},
            ) from None


class LabelResult(BaseModel):
    label: str = Field(description="The most probable label.")
    scores: dict[str, float] = Field(description="Probability of every label, in model order.")
    truncated: bool = Field(description="True when the text was cut to the model's max_length.")
    tokens: int = Field(description="Tokens in the text before any truncation.")


class PredictResponse(BaseModel):
    model: str
    version: str
    demo: bool = Field(description="True when the model is an untrained demo: scores are noise.")
    results: list[LabelResult]


class WordResult(BaseModel):
    word: str
    start: int | None = Field(description="Character offset in the text (null for `words`).")
    end: int | None = Field(description="End offset, exclusive (null for `words`).")
    tag: str | None = Field(description="The word's tag; null when truncation cut it off.")
    score: float | None = Field(description="Probability of the tag.")


class EntityResult(BaseModel):
    type: str = Field(description="Entity type, e.g. PER, LOC, ORG.")
    text: str = Field(description="The entity's text (its words joined by spaces for `words`).")
    start: int | None
    end: int | None
    first_word: int = Field(description="Index of its first word.")
    last_word: int = Field(description="Index of its last word.")
    score: float = Field(description="Mean probability of its words' tags.")


class TagResult(BaseModel):
    words: list[WordResult] | None = Field(
        description="Every word with its tag (null with include_words: false)."
    )
    entities: list[EntityResult] | None = Field(
        description="Merged IOB2 entities (NER models); null for models that tag every word."
    )
    truncated: bool = Field(description="True when words past max_length were left untagged.")
    tokens: int = Field(description="Tokens in the text before any truncation.")


class TagResponse(BaseModel):
    model: str
    version: str
    demo: bool
    label_scheme: str = Field(description="`tags` (a tag per word) or `iob2` (entities).")
    results: list[TagResult]


class ModelInfo(BaseModel):
    name: str
    status: str
    error: str | None = None
    version: str | None = None
    task: str | None = None
    language: str | None = None
    labels: list[str] = Field(default_factory=list)
    max_length: int | None = None
    demo: bool = False
    default: bool = Field(
        default=True,
        description="False: used for its language only when a request names it (`model`).",
    )
    label_scheme: str | None = Field(
        default=None, description="Token classification: `tags` or `iob2`."
    )
    description: str | None = None
    variant: str | None = None
    provider: str | None = None
    io_binding: bool | None = None
    evaluation: list[dict[str, Any]] = Field(default_factory=list)


class ModelList(BaseModel):
    models: list[ModelInfo]


class Readiness(BaseModel):
    ready: bool
    models: dict[str, str] = Field(description="Status of every configured model.")
    reasons: dict[str, str] = Field(default_factory=dict)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorDetail
    request_id: str | None = None
