"""Request and response bodies. Structure is checked here; limits that depend on settings
(texts per request, characters per text) are checked in `check_texts`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from app.errors import InvalidInput
from app.settings import Settings

_SENTIMENT_EXAMPLES: list[Any] = [
    {"text": "Sản phẩm rất tốt, giao hàng nhanh."},
    {"texts": ["Món ăn ngon tuyệt!", "Phục vụ quá chậm, tôi sẽ không quay lại."], "truncate": True},
]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": _SENTIMENT_EXAMPLES})

    text: StrictStr | None = Field(default=None, description="One text. Give `text` or `texts`.")
    texts: list[StrictStr] | None = Field(
        default=None, description="Several texts; results come back in the same order."
    )
    truncate: StrictBool = Field(
        default=True,
        description="Cut texts longer than the model's max_length (result says truncated: "
        "true). With false, such a text is a 422 naming its index and token count.",
    )

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
        json_schema_extra={"examples": [{"texts": ["Timu ya taifa imeshinda mechi ya jana."]}]},
    )

    model: StrictStr | None = Field(
        default=None, description="Pick one of several models serving this language."
    )


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
