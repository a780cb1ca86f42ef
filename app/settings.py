"""Service settings: one pydantic-settings class, read from `SMALLGLOT_*` environment variables.

Bad values fail at start-up with the variable named, rather than at the first request.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Provider = Literal["tensorrt", "cuda", "cpu"]


def _split_csv(value: object) -> object:
    """Accept `a,b,c` from the environment as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMALLGLOT_", extra="ignore")

    models_dir: Path = Path("models")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bundle names to load (comma-separated); empty loads every bundle found.",
    )
    sentiment_model: str | None = Field(
        default=None,
        description="Bundle behind /v1/sentiment; default: the sentiment bundle "
        "for `sentiment_language`.",
    )
    sentiment_language: str = "vi"

    providers: Annotated[list[Provider], NoDecode] = Field(
        default_factory=lambda: list[Provider](["cuda", "cpu"]),
        description="Execution providers in order of preference; CPU is always the fallback.",
    )
    intra_op_threads: int = Field(
        default=1,
        ge=0,
        description="Threads inside one inference (0: onnxruntime's choice). One thread per "
        "batch and several batches in parallel uses a CPU best.",
    )
    inference_workers: int = Field(
        default=0,
        ge=0,
        description="Batches run in parallel per model; 0: one per CPU core on CPU, 1 on GPU.",
    )
    inter_op_threads: int = Field(default=1, ge=0)
    allow_spinning: bool = Field(
        default=False,
        description="Let onnxruntime's idle threads spin: faster alone, slower when they "
        "compete with the HTTP stack for the same cores.",
    )
    use_fp16: bool = True
    use_int8: bool = True
    io_binding: Literal["auto", "on", "off"] = "auto"

    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_batch_tokens: int = Field(default=8192, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0, le=10_000)
    # true: a free worker takes what is queued at once (lowest latency); false: every flush
    # waits for max_batch_size, max_batch_tokens or max_wait_ms, idle or not (fullest batches)
    flush_when_idle: bool = True
    run_overhead_tokens: int | None = Field(
        default=None,
        ge=0,
        description="What one more model call costs, in padded tokens: a flush is cut into the "
        "runs of similar length that cost least (padded tokens plus this per call). "
        "Unset: 8 on a CPU, 1024 on a GPU.",
    )
    max_queue_texts: int = Field(default=2048, ge=1)
    request_timeout_s: float = Field(default=30.0, gt=0)
    retry_after_s: int = Field(default=1, ge=1)
    tokenizer_threads: int = Field(default=2, ge=1)
    # requests of at most this many characters in all are tokenized on the event loop
    inline_tokenize_chars: int = Field(default=2000, ge=0)

    max_texts_per_request: int = Field(default=64, ge=1)
    max_chars_per_text: int = Field(default=5000, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    shutdown_delay_s: float = Field(
        default=2.0,
        ge=0,
        le=120,
        description="After SIGTERM: answer /readyz 503 and refuse new work for this long "
        "before closing the listener, so load balancers stop sending first.",
    )
    circuit_failures: int = Field(
        default=3, ge=1, description="Consecutive failed batches that take a model out."
    )
    circuit_cooldown_s: float = Field(
        default=10.0, gt=0, description="How long a tripped model refuses before a retry."
    )
    admin_token: str | None = Field(
        default=None, description="Enables POST /admin/reload with this bearer token."
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("models", "providers", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("providers")
    @classmethod
    def _providers_not_empty(cls, value: list[Provider]) -> list[Provider]:
        if not value:
            raise ValueError("SMALLGLOT_PROVIDERS must name at least one provider")
        return value

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Settings:
        if self.max_queue_texts < self.max_texts_per_request:
            raise ValueError(
                f"SMALLGLOT_MAX_QUEUE_TEXTS ({self.max_queue_texts}) is smaller than "
                f"SMALLGLOT_MAX_TEXTS_PER_REQUEST ({self.max_texts_per_request}): "
                "a full-size request could never be queued"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
