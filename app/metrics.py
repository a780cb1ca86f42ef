"""Prometheus metrics. These names are a contract: the Grafana dashboard and the alert rules
in docker/ are written against them, and the README lists each one with its meaning."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "smallglot"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
# Every reason `rejected` is counted under, created at 0 so dashboards and alerts see a
# series (and a rate of 0) before the first rejection.
REJECTION_REASONS = (
    "queue_full",
    "not_ready",
    "deadline",
    "shutting_down",
    "body_too_large",
    "unsupported_media_type",
    "invalid_utf8",
)


class Metrics:
    """One set of collectors per app instance, on its own registry (tests build many apps)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_in_flight_requests", "HTTP requests being handled now.", registry=r
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_requests",
            "Requests refused before or instead of inference.",
            ["reason"],
            registry=r,
        )
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)
        self.tokenization = Histogram(
            f"{PREFIX}_tokenization_seconds",
            "Time to tokenize one request's texts.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a text waited in the queue before its batch ran.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            f"{PREFIX}_inference_seconds",
            "onnxruntime time for one batch.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Texts per executed batch.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_padded_tokens = Histogram(
            f"{PREFIX}_batch_padded_tokens",
            "Padded tokens (texts x longest) per executed batch.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.padding_efficiency = Histogram(
            f"{PREFIX}_batch_padding_efficiency",
            "Real tokens / padded tokens per executed batch.",
            ["model"],
            buckets=_RATIO_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Texts waiting in a model's queue.", ["model"], registry=r
        )
        self.input_tokens = Histogram(
            f"{PREFIX}_input_tokens",
            "Tokens per input text before truncation.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.truncated = Counter(
            f"{PREFIX}_truncated_texts",
            "Texts cut to the model's max_length.",
            ["model"],
            registry=r,
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "1 for each loaded model, labelled with what serves it.",
            ["model", "version", "task", "language", "provider", "variant"],
            registry=r,
        )
        self.model_ready = Gauge(
            f"{PREFIX}_model_ready",
            "1 when the model is loaded, warmed and not tripped.",
            ["model"],
            registry=r,
        )
