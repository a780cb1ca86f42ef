"""Typed dependencies: routes ask for what they need; tests build apps with their own."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Annotated

from fastapi import Depends, Request

from app.metrics import Metrics
from app.registry import Registry
from app.settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _tokenizer_pool(request: Request) -> Executor | None:
    return getattr(request.app.state, "tokenizer_pool", None)


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[Registry, Depends(_registry)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
TokenizerPoolDep = Annotated[Executor | None, Depends(_tokenizer_pool)]
