"""The set of served models, looked up by name, by task and by language."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.bundle import MANIFEST, discover, sha256_file
from app.errors import UnknownLanguage, UnknownModel
from app.languages import normalize_language
from app.metrics import Metrics
from app.model import ServedModel
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Registry:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._models: dict[str, ServedModel] = {}

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    async def load(self) -> None:
        """Load every configured bundle off the event loop, then start their batchers."""
        paths = discover(self._settings.models_dir, self._settings.models)
        if not paths:
            log.warning("no bundles found in %s", self._settings.models_dir)
        for path in paths:
            served = await asyncio.to_thread(ServedModel.load, path, self._settings)
            if served.key in self._models:
                log.error(
                    "two bundles are named %r; keeping %s",
                    served.key,
                    self._models[served.key].path,
                )
                continue
            served.start(self._settings, self._metrics)
            self._models[served.key] = served
        ready = sum(m.status == "ready" for m in self)
        log.info("%d of %d bundles ready", ready, len(self._models))

    async def reload(self) -> ReloadReport:
        """Re-read the models directory: new or changed bundles are loaded and swapped in, and
        removed ones stopped. A bundle that fails to load does not replace a working version
        of itself; the failure is reported and logged, and every other model keeps serving."""
        report = ReloadReport()
        seen = set()
        for path in discover(self._settings.models_dir, self._settings.models):
            current = next((m for m in self if m.path == path), None)
            if (
                current is not None
                and current.status == "ready"
                and current.fingerprint == _fingerprint(path)
            ):
                seen.add(current.key)
                report.unchanged.append(current.key)
                continue
            fresh = await asyncio.to_thread(ServedModel.load, path, self._settings)
            if fresh.status != "ready":
                report.failed[fresh.key] = fresh.error or "failed"
                if current is not None and current.status == "ready":
                    seen.add(current.key)
                    log.error("reload kept the running %s: %s", current.key, fresh.error)
                    continue
            old = self._models.pop(current.key, None) if current is not None else None
            fresh.start(self._settings, self._metrics)
            self._models[fresh.key] = fresh
            seen.add(fresh.key)
            if fresh.status == "ready":
                report.loaded.append(fresh.key)
            if old is not None:
                await old.stop(self._settings.request_timeout_s)
        for key in [k for k in self._models if k not in seen]:
            await self._models.pop(key).stop(self._settings.request_timeout_s)
            self._metrics.model_ready.labels(key).set(0)
            report.removed.append(key)
        log.info("reload: %s", report)
        return report

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        await asyncio.gather(*(m.stop(drain_timeout_s) for m in self))

    def not_ready(self) -> dict[str, str]:
        """Reasons, by model, why the service is not ready; empty when it is."""
        if not self._models:
            return {"(none)": f"no bundles configured or found in {self._settings.models_dir}"}
        return {
            m.key: f"{m.status}: {m.error or ''}".rstrip(": ") for m in self if m.status != "ready"
        }

    def get(self, name: str) -> ServedModel:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(
                f"no model named {name!r}; served: {sorted(self._models)}",
                details={"models": sorted(self._models)},
            ) from None

    def sentiment(self) -> ServedModel:
        if self._settings.sentiment_model:
            return self.get(self._settings.sentiment_model)
        language = normalize_language(self._settings.sentiment_language)
        candidates = self._matching("sentiment", language)
        if not candidates:
            raise UnknownModel(
                f"no sentiment model for language {self._settings.sentiment_language!r} is "
                "configured",
                details={"models": sorted(self._models)},
            )
        return _prefer_ready(candidates)

    def classifier(self, language: str, model: str | None) -> ServedModel:
        return self.for_language("classification", language, model)

    def tagger(self, language: str, model: str | None) -> ServedModel:
        return self.for_language("token-classification", language, model)

    def for_language(self, task: str, language: str, model: str | None) -> ServedModel:
        """The `task` model of `language`: the one named, else the language's default."""
        tag = normalize_language(language)
        served = self.languages(task)
        if tag is None or tag not in served:
            raise UnknownLanguage(
                f"no {task} model for language {language!r}; languages served: {served or 'none'}",
                details={"languages": served},
            )
        candidates = self._matching(task, tag)
        if model is None:
            return _prefer_ready(candidates)
        for candidate in candidates:
            if candidate.key == model:
                return candidate
        raise UnknownModel(
            f"model {model!r} does not serve {task} for {tag!r}; choose one of "
            f"{[c.key for c in candidates]}",
            details={"models": [c.key for c in candidates]},
        )

    def languages(self, task: str) -> list[str]:
        return sorted(
            {
                tag
                for m in self
                if m.bundle is not None and m.bundle.manifest.task == task
                for tag in [normalize_language(m.bundle.manifest.language)]
                if tag
            }
        )

    def _matching(self, task: str, tag: str | None) -> list[ServedModel]:
        return [
            m
            for m in self
            if m.bundle is not None
            and m.bundle.manifest.task == task
            and normalize_language(m.bundle.manifest.language) == tag
        ]


def _fingerprint(path: Path) -> str | None:
    manifest = path / MANIFEST
    return sha256_file(manifest) if manifest.is_file() else None


def _prefer_ready(candidates: list[ServedModel]) -> ServedModel:
    """A ready trained default model, else a ready trained one, else a ready demo, else the
    first, so the caller's 503 names a reason: a checkout that still holds the untrained demo
    bundle serves the real model, and a tiny alternative answers only when named."""
    candidates = sorted(
        candidates, key=lambda m: m.bundle is not None and not m.bundle.manifest.default
    )
    ready = [m for m in candidates if m.status == "ready"]
    trained = [m for m in ready if m.bundle is not None and not m.bundle.manifest.raw.get("demo")]
    return (trained or ready or candidates)[0]
