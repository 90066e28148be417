"""The protocol page's examples are what the codec reads and writes: each ``datagram`` block of
docs/systems/game-protocol.md decodes to its fields, and encoding those fields gives its bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgpack
import pytest

from protocols import game as g

PAGE = Path(__file__).resolve().parents[2] / "docs" / "systems" / "game-protocol.md"
BLOCK = re.compile(r"```datagram\n(?P<name>[A-Z_]+) (?P<array>\[.*?\])\n(?P<hex>[0-9a-f \n]+)```")

ENCODE = {
    "JOIN": lambda f: g.encode_join(*f),
    "INPUT": lambda f: g.encode_input(*f),
    "LEAVE": lambda f: g.encode_leave(*f),
    "WELCOME": lambda f: g.encode_welcome(g.Welcome(*f)),
    "SNAPSHOT": lambda f: g.encode_snapshot(g.snapshot_head(f[0]), f[1],
                                            g.snapshot_tail(f[2], f[3], f[4])),
    "REJOIN": lambda f: g.encode_rejoin(*f),
    "REJECT": lambda f: g.encode_reject(*f),
    "GAME_OVER": lambda f: g.encode_game_over(*f),
}
CLIENT = {"JOIN", "INPUT", "LEAVE"}


def examples() -> list[tuple[str, list, bytes]]:
    return [(m["name"], json.loads(m["array"]), bytes.fromhex(m["hex"].replace("\n", " ")))
            for m in BLOCK.finditer(PAGE.read_text())]


def test_the_page_shows_an_example_of_every_kind() -> None:
    assert {name for name, _, _ in examples()} == set(ENCODE)


@pytest.mark.parametrize("name, array, data", examples(), ids=[e[0] for e in examples()])
def test_each_example_is_what_the_codec_reads_and_writes(name: str, array: list,
                                                         data: bytes) -> None:
    assert msgpack.unpackb(data) == array, "the bytes are the array shown"
    assert array[0] == g.WIRE_VERSION and array[1] == getattr(g, name)
    fields = array[2:]
    assert ENCODE[name](fields) == data, "the codec writes exactly these bytes"
    decoded = g.decode_client(data) if name in CLIENT else g.decode_server(data)
    assert type(decoded).__name__.upper().replace("DATAGRAM", "") == name.replace("_", "")
    assert list(decoded) == fields, "and reads them back as these fields"


def test_the_limits_on_the_page_are_the_codec_s() -> None:
    text = PAGE.read_text()
    assert f"**{g.MAX_CLIENT_DATAGRAM} bytes**" in text and f"**{g.SEQ_WINDOW}**" in text
    for code, word in ((g.REJECT_BAD_TOKEN, "bad token"), (g.REJECT_UNKNOWN_ROOM, "unknown room"),
                       (g.REJECT_NOT_IN_ROOM, "not in this room"),
                       (g.REJECT_SUPERSEDED, "superseded")):
        assert f"**{code}** {word}" in text
    kinds = {g.JOIN: "JOIN", g.INPUT: "INPUT", g.LEAVE: "LEAVE", g.WELCOME: "WELCOME",
             g.SNAPSHOT: "SNAPSHOT", g.REJOIN: "REJOIN", g.REJECT: "REJECT",
             g.GAME_OVER: "GAME_OVER"}
    for number, name in kinds.items():
        assert f"| {number} `{name}` |" in text
