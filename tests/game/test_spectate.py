"""What a spectator reads: the running rooms with their players' names, and a room's checkpoint
of its last tick from its game server (live, not the matchmaker's copy of the last poll)."""

from __future__ import annotations

import pytest

from systems.game import SYSTEM
from tests.support.clients import call
from tests.support.game import Http, settings, wait

pytestmark = pytest.mark.multiproc


def test_a_spectator_sees_running_rooms_and_each_room_s_last_tick(make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, room_size=1, poll_s=5.0)), base="multiproc")
    http = Http(rt)
    ann = http.player("ann")
    http.post("/queue", {"token": ann["token"]})
    matched = wait(lambda: (a := http.post("/queue/status", {"token": ann["token"]})[1])["status"]
                   == "matched" and a, what="ann matched")
    room = matched["room_id"]
    rooms = call(http.url + "/rooms", timeout_s=5)
    assert rooms.status == 200
    (view,) = rooms.json["rooms"]
    assert (view["room_id"], view["names"], view["server_port"]) == \
        (room, {str(ann["player_id"]): "ann"}, matched["server_port"])
    first = call(f"{http.url}/rooms/{room}", timeout_s=5).json["checkpoint"]
    later = wait(lambda: (c := call(f"{http.url}/rooms/{room}", timeout_s=5).json["checkpoint"])
                 ["tick"] >= first["tick"] + 6 and c, timeout_s=3,
                 what="a newer tick than the matchmaker's 5 s poll could give")
    assert later["players"][0][0] == ann["player_id"]
    missing = call(http.url + "/rooms/no-such-room", timeout_s=5)
    assert missing.status == 404 and missing.headers["X-Content-Type-Options"] == "nosniff"
