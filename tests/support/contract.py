"""The HTTP contract check the tests share (no tests here): fetch an edge's ``/openapi.json`` and let
schemathesis send each operation a few generated requests, checking every answer against it."""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

OPENAPI_PATH = "/openapi.json"
DOMAIN_REFUSALS = [positive_data_acceptance]
"""Checks left out: a body the schema allows may still be refused for what it says (an unknown
sensor, a time too old): a documented ``invalid`` refusal, not a broken contract."""


def openapi_of(base_url: str, verify: str | bool = True) -> dict[str, Any]:
    answer = requests.get(base_url + OPENAPI_PATH, verify=verify, timeout=10)
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    return document


def check_contract(base_url: str, *, verify: str | bool = True,
                   max_examples: int = 8) -> list[str]:
    """Run schemathesis over every operation of the edge at ``base_url`` (``verify``: the CA file
    of a self-signed edge). Raises on the first 5xx or answer that breaks the document (status,
    content type, headers, body schema); returns the operations it exercised."""
    schema = schemathesis.openapi.from_dict(openapi_of(base_url, verify))
    session = requests.Session()
    session.verify = verify
    exercised = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def exchange(case: Any) -> None:
            case.call_and_validate(base_url=base_url, session=session, verify=verify, timeout=10,
                                   excluded_checks=DOMAIN_REFUSALS)

        exchange()
        exercised.append(f"{operation.method.upper()} {operation.path}")
    return exercised

