"""The prediction API keeps its OpenAPI contract: schemathesis sends generated requests (random
bodies to the upload, random job ids) to the real service; no answer is a 5xx and every answer
matches the document."""

from __future__ import annotations

from typing import Any

from tests.inference.service import render_text, start_service
from tests.support.clients import meanwhile
from tests.support.contract import check_contract, openapi_of

ROUTES = ["GET /health", "GET /predictions/{job_id}", "GET /predictions/{job_id}/events",
          "POST /predictions"]


def test_the_prediction_api_documents_every_route_and_keeps_its_contract(make_runtime: Any,
                                                                         tmp_path: Any) -> None:
    service = start_service(make_runtime, tmp_path, max_upload_bytes=100_000)
    _, accepted, _ = service.post(render_text("HELLO 42"))
    service.wait_answered([accepted["job_id"]])
    document = meanwhile(service.rt, lambda: openapi_of(service.url))
    operations = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                        for method in item)
    assert operations == ROUTES
    exercised = meanwhile(service.rt, lambda: check_contract(service.url, max_examples=6),
                          timeout_s=180)
    assert sorted(exercised) == ROUTES
