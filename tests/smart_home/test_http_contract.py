"""The smart home's HTTPS ingest keeps its OpenAPI contract: schemathesis sends generated requests
to the real server over real TLS; no answer is a 5xx and every answer matches the document."""

from __future__ import annotations

from actors.edges.tls import CERT_FILE
from tests.support.clients import meanwhile
from tests.support.contract import check_contract, openapi_of
from tests.support.smart_home import start_home


def test_the_ingest_documents_every_route_and_keeps_its_contract(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    ca = str(tmp_path / "tls" / CERT_FILE)
    try:
        document = meanwhile(home.rt, lambda: openapi_of(home.ingest_url, ca))
        assert document["openapi"] == "3.1.0"
        assert set(document["paths"]) == {"/readings", "/readings/batch", "/mode", "/health"}
        answers = document["paths"]["/readings/batch"]["post"]["responses"]
        assert {"200", "400", "403", "413", "503", "504"} <= set(answers)
        assert "Retry-After" in answers["503"]["headers"]
        exercised = meanwhile(home.rt, lambda: check_contract(home.ingest_url, verify=ca),
                              timeout_s=120)
        assert sorted(exercised) == ["GET /health", "POST /mode", "POST /readings",
                                     "POST /readings/batch"]
    finally:
        home.close()
