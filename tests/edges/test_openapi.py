"""An HTTP edge's OpenAPI 3.1 document is its route table: every route with its parameters, body,
answer and one error answer per refusal kind (at the kind's status); and a real server over TLS
keeps that contract under schemathesis (no 5xx, every answer matches)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from actors.edges import (
    HTTP_STATUS,
    Answer,
    EdgeBridge,
    HttpServer,
    Inbound,
    LoopThread,
    Route,
    build_app,
    openapi_document,
    refusals_of,
    self_signed_context,
)
from actors.edges.tls import CERT_FILE
from protocols.errors import RefusalKind, RefusedError
from protocols.message import Message, WireBody
from tests.support.contract import check_contract, openapi_of


class Note(WireBody):
    text: str = Field(min_length=1, max_length=40)


class NoteParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    shelf: str = Field(pattern=r"^[a-z]{1,8}$")
    limit: int = Field(default=5, ge=1, le=50)


class Notes(Message):
    shelf: str
    notes: list[str]


SHELVES = {"red": ["a", "b", "c"], "blue": []}


async def list_notes(host: Any, inbound: Inbound) -> Notes:
    shelf = inbound.params.shelf
    if shelf not in SHELVES:
        raise RefusedError(f"no shelf {shelf}", refusal=RefusalKind.NOT_FOUND, shelf=shelf)
    return Notes(shelf=shelf, notes=SHELVES[shelf][:inbound.params.limit])


async def add_note(host: Any, inbound: Inbound) -> Notes:
    if inbound.body.text == "taken":
        raise RefusedError("that note exists", refusal=RefusalKind.CONFLICT)
    return Notes(shelf=inbound.params.shelf, notes=[inbound.body.text])


ROUTES = [
    Route("GET", "/shelves/{shelf}/notes", params=NoteParams, response=Notes, answer=Answer.REPLY,
          loop_handler=list_notes, name="list"),
    Route("POST", "/shelves/{shelf}/notes", Note, params=NoteParams, response=Notes,
          answer=Answer.REPLY, loop_handler=add_note, refuses=(RefusalKind.CONFLICT,),
          name="add"),
    Route("POST", "/notes/accepted", list[Note], name="accepted"),
]


def test_every_route_is_documented_with_its_parameters_body_and_answer() -> None:
    document = openapi_document(ROUTES, title="notes")
    assert document["openapi"] == "3.1.0" and document["info"]["title"] == "notes"
    paths = document["paths"]
    assert set(paths) == {"/shelves/{shelf}/notes", "/notes/accepted", "/health"}
    listing = paths["/shelves/{shelf}/notes"]["get"]
    assert {(p["name"], p["in"], p["required"]) for p in listing["parameters"]} == {
        ("shelf", "path", True), ("limit", "query", False)}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Notes"}
    adding = paths["/shelves/{shelf}/notes"]["post"]
    assert adding["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Note"}
    assert "202" in paths["/notes/accepted"]["post"]["responses"]
    assert {"Note", "Notes", "Error"} <= set(document["components"]["schemas"])


def test_each_refusal_kind_a_route_may_give_is_documented_at_its_status() -> None:
    document = openapi_document(ROUTES)
    for route in ROUTES:
        responses = document["paths"][route.path][route.method.lower()]["responses"]
        for kind in refusals_of(route):
            answer = responses[str(HTTP_STATUS[kind])]
            assert answer["description"] == f"refused: {kind.value}"
            assert answer["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
    adding = document["paths"]["/shelves/{shelf}/notes"]["post"]["responses"]
    assert {"400", "403", "404", "409", "413", "503", "504"} == set(adding) - {"200"}
    assert "Retry-After" in adding["503"]["headers"]
    assert HTTP_STATUS == {RefusalKind.INVALID: 400, RefusalKind.UNAUTHORIZED: 401,
                           RefusalKind.FORBIDDEN: 403, RefusalKind.NOT_FOUND: 404,
                           RefusalKind.CONFLICT: 409, RefusalKind.TOO_LARGE: 413,
                           RefusalKind.UNSUPPORTED: 415, RefusalKind.TOO_MANY: 429, RefusalKind.UNAVAILABLE: 503,
                           RefusalKind.TIMEOUT: 504}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The notes edge over TLS on a loop thread; the accepted route's bridge is drained by nobody
    (its items are fire-and-forget)."""
    bridge: EdgeBridge[Inbound] = EdgeBridge(max_in_flight=1024)
    app = build_app(ROUTES, bridge=bridge, max_body_bytes=4096, allow_networks=["127.0.0.0/8"],
                    title="notes")
    server = HttpServer(app, ssl_context=self_signed_context(tmp_path))
    loop = LoopThread(name="notes-edge")
    loop.start()
    try:
        loop.run(server.start(), 10)
        yield server.url, str(tmp_path / CERT_FILE)
    finally:
        bridge.close()
        loop.run(server.stop(), 10)
        loop.stop()


def test_a_real_server_keeps_its_documented_contract(served: tuple[str, str]) -> None:
    url, ca = served
    assert openapi_of(url, ca) == openapi_document(ROUTES, title="notes")
    exercised = check_contract(url, verify=ca, max_examples=15)
    assert sorted(exercised) == ["GET /health", "GET /shelves/{shelf}/notes",
                                 "POST /notes/accepted", "POST /shelves/{shelf}/notes"]
