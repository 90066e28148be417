"""The game lobby keeps its OpenAPI contract: schemathesis sends generated requests to the real
lobby in real processes; no answer is a 5xx and every answer matches the document, refusals
included (a made-up token is refused unauthorized, 401, as the document says)."""

from __future__ import annotations

import pytest

from systems.game import SYSTEM
from tests.support.contract import check_contract, openapi_of
from tests.support.game import Http, settings

pytestmark = pytest.mark.multiproc


def test_the_lobby_documents_every_route_and_keeps_its_contract(make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path)), base="multiproc")
    http = Http(rt)
    document = openapi_of(http.url)
    paths = document["paths"]
    assert set(paths) == {"/accounts", "/login", "/queue", "/queue/status", "/queue/leave",
                          "/leaderboard/top", "/leaderboard/rank", "/chat/send", "/chat/history",
                          "/rooms", "/rooms/{room_id}", "/health"}
    assert "409" in paths["/accounts"]["post"]["responses"]
    assert {"401", "429"} <= set(paths["/chat/send"]["post"]["responses"])
    assert "404" in paths["/leaderboard/rank"]["post"]["responses"]
    exercised = check_contract(http.url, max_examples=6)
    assert len(exercised) == sum(1 for ops in paths.values() for m in ops if m in ("get", "post"))
    assert "get" in paths["/leaderboard/top"], "the leaderboard is readable with a plain GET"
