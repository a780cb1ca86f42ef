"""Schemathesis against the live service: generated valid (positive) and invalid (negative)
requests on every operation. No response may be a 5xx or break the documented schema
(status code, content type, body). Schema-valid requests may still be refused for limits a
schema cannot state (tokens over max_length with truncate=false), so "valid data must be
accepted" is not one of the checks; every other schemathesis check is."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.reliability.server import record, serve

pytestmark = pytest.mark.slow
PER_OPERATION_AND_MODE = 260


def fuzz(
    strategy: object, key: str, base: str, counts: dict[str, int], failures: list[str]
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=PER_OPERATION_AND_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        counts[key] = counts.get(key, 0) + 1
        response = case.call(base_url=base, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{key}: {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, excluded_checks=[positive_data_acceptance])
        except Exception as exc:
            failures.append(f"{key}: {str(exc)[:300]}")

    try:
        run()
    except Unsatisfiable:  # e.g. no invalid request exists for an operation without inputs
        counts.setdefault(key, 0)


def test_generated_requests_never_get_a_5xx_or_break_the_schema(
    built: dict[str, Path],
) -> None:
    counts: dict[str, int] = {}
    failures: list[str] = []
    with serve(
        built["vi-sentiment"].parent,
        admin_token="fuzz-token",
        max_texts_per_request=16,
        max_chars_per_text=2000,
    ) as server:
        schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                key = f"{operation.method.upper()} {operation.path} ({mode.value})"

                fuzz(
                    operation.as_strategy(generation_mode=mode), key, server.base, counts, failures
                )
    total = sum(counts.values())
    record("fuzz", {"cases": total, "failures": len(failures), "per_operation": counts})
    assert not failures, failures[:5]
    assert total >= 1000, counts
