"""The game's datagram codec: what is encoded decodes to the same thing; garbage is one error type."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import InvalidMessageError
from protocols.game import (
    MAX_CONN,
    MAX_SEQ,
    GameOver,
    InputDatagram,
    JoinDatagram,
    LeaveDatagram,
    Reject,
    Rejoin,
    Snapshot,
    Welcome,
    decode_client,
    decode_server,
    encode_game_over,
    encode_input,
    encode_join,
    encode_leave,
    encode_reject,
    encode_rejoin,
    encode_snapshot,
    encode_welcome,
    snapshot_head,
    snapshot_tail,
)

conns = st.integers(1, MAX_CONN)
seqs = st.integers(1, MAX_SEQ)
moves = st.integers(-1, 1)
room_ids = st.from_regex(r"[A-Za-z0-9-]{1,32}", fullmatch=True)
tokens = st.text(min_size=1, max_size=200)
counts = st.integers(0, 2**31)
int_lists = st.lists(st.integers(-(2**31), 2**31), max_size=64)


@given(conns, seqs, moves, moves)
def test_input_round_trips(conn: int, seq: int, dx: int, dy: int) -> None:
    assert decode_client(encode_input(conn, seq, dx, dy)) == InputDatagram(conn, seq, dx, dy)


@given(tokens, room_ids)
def test_join_round_trips(token: str, room_id: str) -> None:
    assert decode_client(encode_join(token, room_id)) == JoinDatagram(token, room_id)


@given(conns)
def test_leave_round_trips(conn: int) -> None:
    assert decode_client(encode_leave(conn)) == LeaveDatagram(conn)


@given(counts, counts, counts, int_lists, int_lists)
def test_snapshot_built_from_shared_parts_round_trips(tick: int, ack: int, ends_at: int,
                                                      coins: list[int], players: list[int]) -> None:
    data = encode_snapshot(snapshot_head(tick), ack, snapshot_tail(ends_at, coins, players))
    assert decode_server(data) == Snapshot(tick, ack, ends_at, coins, players)


@given(conns, room_ids, counts, counts, counts, counts)
def test_welcome_round_trips(conn: int, room_id: str, player: int, tick: int, last: int,
                             arena: int) -> None:
    welcome = Welcome(conn, room_id, player, tick, last, arena)
    assert decode_server(encode_welcome(welcome)) == welcome


@given(conns, st.integers(0, 9), st.text(max_size=50), room_ids, int_lists)
def test_control_datagrams_round_trip(conn: int, code: int, text: str, room_id: str,
                                      scores: list[int]) -> None:
    assert decode_server(encode_rejoin(conn)) == Rejoin(conn)
    assert decode_server(encode_reject(code, text)) == Reject(code, text)
    assert decode_server(encode_game_over(room_id, scores)) == GameOver(room_id, scores)


GARBAGE = [
    b"", b"\xc1", b"\x93\x01", b"not msgpack", msgpack.packb({"v": 1}),
    msgpack.packb([2, 2, 1, 1, 0, 0]),                 # another wire version
    msgpack.packb([True, 2, 1, 1, 0, 0]),              # a bool is not version 1
    msgpack.packb([1, 2, 1, 1, 2, 0]),                 # dx out of range
    msgpack.packb([1, 2, 1, 0, 0, 0]),                 # seq 0
    msgpack.packb([1, 2, 1, 1, True, 0]),              # a bool is not a move
    msgpack.packb([1, 2, 1, 1, 0]),                    # a field missing
    msgpack.packb([1, 1, "t", "bad room id!"]),
    msgpack.packb([1, 1, "", "room"]),                 # empty token
    msgpack.packb([1, 99, 1]),                         # unknown kind
    msgpack.packb([1, 2, 1, 1, 0, 0]) + b"\x00",       # trailing bytes
    b"\x91" + b"\xa1x" * 600,                          # over the size limit
]


@pytest.mark.parametrize("data", GARBAGE)
def test_a_bad_client_datagram_raises_only_invalid_message_error(data: bytes) -> None:
    with pytest.raises(InvalidMessageError):
        decode_client(data)


@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_invalid_message_error(data: bytes) -> None:
    for decode in (decode_client, decode_server):
        try:
            decode(data)
        except InvalidMessageError:
            pass
