"""A served model: a bundle's tokenizer, onnxruntime session and batcher, plus its status.

Loading is all-or-nothing per bundle: whatever goes wrong becomes `status="failed"` with the
reason, and the other bundles are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from app.batching import BatchConfig, Batcher
from app.bundle import MANIFEST, Bundle, Manifest, load_bundle, sha256_file
from app.errors import BundleError, ModelNotReady
from app.metrics import Metrics
from app.runtime import OrtModel
from app.settings import Settings
from app.tagging import Tagged, WordInput, entities, tag_words
from app.tokenization import Encoded, TextEncoder

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed", "tripped"]


@dataclass
class Prediction:
    label: str
    scores: dict[str, float]
    truncated: bool
    tokens: int


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


@dataclass
class ServedModel:
    """One bundle as the service sees it. `bundle` is None when even the manifest failed."""

    key: str
    path: Path
    status: Status = "loading"
    error: str | None = None
    bundle: Bundle | None = None
    encoder: TextEncoder | None = None
    runtime: OrtModel | None = None
    batcher: Batcher | None = None
    loaded_at: float | None = field(default=None, repr=False)
    fingerprint: str | None = field(default=None, repr=False)
    failures: int = field(default=0, repr=False)  # consecutive failed batches
    open_until: float = field(default=0.0, repr=False)  # circuit open until (monotonic)
    _settings: Settings | None = field(default=None, repr=False)
    _metrics: Metrics | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: Path, settings: Settings) -> ServedModel:
        """Validate, open and warm a bundle; never raises (a failure is recorded instead)."""
        served = cls(key=path.name, path=path)
        try:
            if not path.is_dir():
                raise BundleError(path.name, f"bundle directory {path} does not exist")
            served.bundle = load_bundle(path)
            served.fingerprint = sha256_file(path / MANIFEST)
            served.key = served.bundle.name
            manifest = served.bundle.manifest
            served.encoder = TextEncoder.for_bundle(served.bundle)
            served.runtime = OrtModel(served.bundle, settings)
            served.runtime.warm_up(served.encoder.dummy(min(16, manifest.max_length)))
        except BundleError as exc:
            served.status, served.error = "failed", str(exc)
            log.error("not serving %s", exc)
            return served
        served.status, served.loaded_at = "ready", time.time()
        return served

    def start(self, settings: Settings, metrics: Metrics) -> None:
        """Start the batcher (needs the running event loop) and publish the model's metrics."""
        self._settings, self._metrics = settings, metrics
        metrics.model_ready.labels(self.key).set(1 if self.status == "ready" else 0)
        metrics.queue_depth.labels(self.key).set(0)
        metrics.truncated.labels(self.key)  # a series at 0 from the start
        if self.status != "ready" or self.runtime is None or self.encoder is None:
            return
        manifest = self.manifest
        metrics.model_info.labels(
            self.key,
            manifest.version,
            manifest.task,
            manifest.language,
            self.runtime.info.provider,
            self.runtime.info.variant,
        ).set(1)
        config = BatchConfig(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_s=settings.max_wait_ms / 1000,
            flush_when_idle=settings.flush_when_idle,
            max_queue=settings.max_queue_texts,
            retry_after_s=settings.retry_after_s,
            workers=settings.inference_workers or self.runtime.default_workers(),
            run_overhead_tokens=self.runtime.run_overhead_tokens(settings),
        )
        self.batcher = Batcher(
            self.key,
            self.runtime.infer,
            self.encoder.pad_id,
            config,
            metrics,
            on_outcome=self._outcome,
        )
        self.batcher.start()

    def _outcome(self, ok: bool) -> None:
        """The circuit: `circuit_failures` failed batches in a row take the model out for
        `circuit_cooldown_s`; then requests are let through again, and one success closes it."""
        assert self._settings is not None
        assert self._metrics is not None
        if ok:
            if self.status == "tripped":
                log.warning("model %s recovered: inference works again", self.key)
            self.failures, self.status = 0, "ready"
            self.error = None
        else:
            self.failures += 1
            if self.failures >= self._settings.circuit_failures:
                self.open_until = time.monotonic() + self._settings.circuit_cooldown_s
                if self.status != "tripped":
                    log.error(
                        "model %s taken out: %d batches failed in a row", self.key, self.failures
                    )
                self.status = "tripped"
                self.error = f"inference failed {self.failures} times in a row"
        self._metrics.model_ready.labels(self.key).set(1 if self.status == "ready" else 0)

    async def stop(self, drain_timeout_s: float) -> None:
        if self.batcher is not None:
            await self.batcher.stop(drain_timeout_s)

    @property
    def manifest(self) -> Manifest:
        if self.bundle is None:
            raise ModelNotReady(f"model {self.key!r} has no valid bundle: {self.error}")
        return self.bundle.manifest

    async def predict(
        self,
        texts: list[str],
        truncate: bool,
        settings: Settings,
        metrics: Metrics,
        tokenizer_pool: Executor | None = None,
    ) -> list[Prediction]:
        """Tokenize off the event loop, queue for batched inference, decode scores."""
        encoder, batcher = self._serving(settings, metrics)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if sum(len(t) for t in texts) <= settings.inline_tokenize_chars:
            # a short request costs less to encode here than a hop to the tokenizer threads
            encoded = encoder.encode(texts, truncate)
        else:
            encoded = await loop.run_in_executor(tokenizer_pool, encoder.encode, texts, truncate)
        self._observe(encoded, time.perf_counter() - started, metrics)
        logits = await batcher.run([e.ids for e in encoded], settings.request_timeout_s)
        probs = softmax(np.stack(logits))
        labels = self.manifest.labels
        return [
            Prediction(
                label=labels[int(row.argmax())],
                scores={label: float(p) for label, p in zip(labels, row, strict=True)},
                truncated=enc.truncated,
                tokens=enc.original_tokens,
            )
            for row, enc in zip(probs, encoded, strict=True)
        ]

    async def tag(
        self,
        items: list[WordInput],
        truncate: bool,
        settings: Settings,
        metrics: Metrics,
        tokenizer_pool: Executor | None = None,
    ) -> list[Tagged]:
        """Token classification: each word's tag (and, for IOB2 bundles, the entities)."""
        encoder, batcher = self._serving(settings, metrics)
        started = time.perf_counter()
        words = [item.words for item in items]
        loop = asyncio.get_running_loop()
        if sum(len(w) for ws in words for w in ws) <= settings.inline_tokenize_chars:
            encoded = encoder.encode_words(words, truncate)
        else:
            encoded = await loop.run_in_executor(
                tokenizer_pool, encoder.encode_words, words, truncate
            )
        self._observe(encoded, time.perf_counter() - started, metrics)
        logits = await batcher.run([e.ids for e in encoded], settings.request_timeout_s)
        labels = list(self.manifest.labels)
        iob2 = self.manifest.label_scheme == "iob2"
        results = []
        for item, enc, rows in zip(items, encoded, logits, strict=True):
            tagged = tag_words(item, rows[: len(enc.ids)], enc.first_tokens, labels)
            found = entities(item, tagged) if iob2 else None
            results.append(Tagged(tagged, found, enc.truncated, enc.original_tokens))
        return results

    def _observe(self, encoded: Sequence[Encoded], seconds: float, metrics: Metrics) -> None:
        metrics.tokenization.labels(self.key).observe(seconds)
        for enc in encoded:
            metrics.input_tokens.labels(self.key).observe(enc.original_tokens)
            if enc.truncated:
                metrics.truncated.labels(self.key).inc()

    def _serving(self, settings: Settings, metrics: Metrics) -> tuple[TextEncoder, Batcher]:
        """The encoder and batcher of a model that takes requests now, else the 503 why not."""
        if self.status == "tripped" and time.monotonic() < self.open_until:
            metrics.rejected.labels("not_ready").inc()
            wait = max(1, round(self.open_until - time.monotonic()))
            raise ModelNotReady(
                f"model {self.key!r} is out of service: {self.error}; retrying in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if self.status not in ("ready", "tripped") or self.encoder is None or not self.batcher:
            metrics.rejected.labels("not_ready").inc()
            raise ModelNotReady(
                f"model {self.key!r} is not ready ({self.status}): {self.error or 'loading'}",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        return self.encoder, self.batcher
