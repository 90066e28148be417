"""The wire codecs round-trip every valid message and refuse everything else with a clear error."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import Codec, InvalidMessageError, Message
from protocols.supervision import ExitReason


class Reading(Message):
    sensor_id: str
    value: float
    seq: int
    tags: list[str] = []


class Command(Message):
    kind = "cmd"
    text: str


CODEC = Codec([Reading, Command])
readings = st.builds(Reading, sensor_id=st.text(max_size=20),
                     value=st.floats(allow_nan=False, allow_infinity=False),
                     seq=st.integers(min_value=-(2**63), max_value=2**63 - 1),
                     tags=st.lists(st.text(max_size=5), max_size=3))


@given(readings)
def test_msgpack_round_trip(msg: Reading) -> None:
    assert CODEC.from_msgpack(CODEC.to_msgpack(msg)) == msg


@given(readings)
def test_json_round_trip(msg: Reading) -> None:
    assert CODEC.from_json(CODEC.to_json(msg)) == msg


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_anything_but_invalid_message(data: bytes) -> None:
    try:
        CODEC.from_msgpack(data)
    except InvalidMessageError:
        pass


def test_the_kind_can_differ_from_the_class_name() -> None:
    assert CODEC.from_json(CODEC.to_json(Command(text="go"))) == Command(text="go")
    assert CODEC.kinds == ["Reading", "cmd"]


@pytest.mark.parametrize("envelope, field", [
    ({"v": 99, "k": "Reading", "d": {}}, "v"),
    ({"v": 1, "k": "Nope", "d": {}}, "k"),
    ({"v": 1, "k": "Reading", "d": []}, "d"),
    ({"v": 1, "k": "Reading", "d": {"sensor_id": "s", "value": "hot", "seq": 1}}, "value"),
    ({"v": 1, "k": "Reading", "d": {"sensor_id": "s", "value": 1.0}}, "seq"),
    ({"v": 1, "k": "Reading", "d": {"sensor_id": "s", "value": 1, "seq": 1, "x": 1}}, "x"),
])
def test_invalid_envelopes_name_the_bad_field(envelope, field) -> None:
    with pytest.raises(InvalidMessageError) as err:
        CODEC.from_json(json.dumps(envelope))
    assert field in [e["field"] for e in err.value.errors]
    assert err.value.as_json()["fields"]


def test_garbage_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidMessageError, match="not JSON"):
        CODEC.from_json(b"{")
    with pytest.raises(InvalidMessageError, match="not msgpack"):
        CODEC.from_msgpack(b"\xc1")
    with pytest.raises(InvalidMessageError, match="envelope"):
        CODEC.from_msgpack(msgpack.packb([1, 2]))


def test_messages_are_frozen() -> None:
    msg = Reading(sensor_id="a", value=1.0, seq=1)
    with pytest.raises(Exception):
        msg.value = 2.0  # type: ignore[misc]


def test_exit_reasons_say_whether_they_are_abnormal() -> None:
    assert not ExitReason.normal().is_abnormal and not ExitReason.shutdown().is_abnormal
    assert ExitReason.killed().is_abnormal
    try:
        raise ValueError("boom")
    except ValueError as exc:
        reason = ExitReason.from_exception(exc)
    assert reason.is_abnormal and reason.error_type == "ValueError" and "boom" in str(reason)
