"""The car's datagrams round-trip, and any bytes decode to a sample, an op or an
``InvalidMessageError`` (what the holder counts), never another exception; the VSS loader refuses
what it does not understand, naming the entry."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.car.vss import VssError, parse_vspec
from protocols.car import (
    ClientOp,
    SensorSample,
    SignalValue,
    decode_client_reply,
    decode_datagram,
    encode_client_op,
    encode_sample,
    encode_values,
)
from protocols.errors import InvalidMessageError

values = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=False))


@given(st.integers(-2**63, 2**64 - 1), st.integers(0, 2**64 - 1),
       st.floats(allow_nan=False, allow_infinity=False), values)
def test_a_sample_round_trips(sensor_id: int, seq: int, ts: float, value: object) -> None:
    decoded = decode_datagram(encode_sample(sensor_id, seq, ts, value))  # type: ignore[arg-type]
    assert decoded == SensorSample(sensor_id, seq, ts, value)  # type: ignore[arg-type]
    assert type(decoded.value) is type(value)  # type: ignore[union-attr]


@given(st.sampled_from(["get", "set", "sub", "unsub"]),
       st.lists(st.text(min_size=1, max_size=40), max_size=5), st.floats(0, 1000))
def test_a_client_op_round_trips(op: str, paths: list[str], rate_hz: float) -> None:
    decoded = decode_datagram(encode_client_op(op, paths=paths, rate_hz=rate_hz, tag=7))
    assert decoded == ClientOp(op, {"paths": paths, "rate_hz": rate_hz, "tag": 7})


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_invalid_message(data: bytes) -> None:
    try:
        decoded = decode_datagram(data)
    except InvalidMessageError:
        return
    assert isinstance(decoded, (SensorSample, ClientOp))


@given(st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12))
def test_any_msgpack_value_decodes_or_raises_invalid_message(item: object) -> None:
    try:
        decode_datagram(msgpack.packb(item))
    except InvalidMessageError:
        pass


def test_value_rows_round_trip_through_an_answer() -> None:
    value = SignalValue(path="Vehicle.Speed", value=12.5, source="sensor-1", ts=3.0, age_ms=1.5,
                        state="available", seq=9)
    reply = decode_client_reply(encode_values("val", [value.row()], tag=3, member="a"))
    assert reply["tag"] == 3 and SignalValue.from_row(reply["values"][0]) == value


@pytest.mark.parametrize(("text", "names"), [
    ("Vehicle: {type: branch}\nVehicle.X: {type: sensor, datatype: float, colour: red}",
     "colour"),
    ("Vehicle.X: {type: sensor, datatype: float}", "before (or without) its branch Vehicle"),
    ("Vehicle: {type: branch}\nVehicle.X: {type: sensor, datatype: float128}", "float128"),
    ("Vehicle: {type: branch}\nVehicle.X: {type: signal, datatype: float}", "'signal'"),
    ("Vehicle: {type: branch}\nVehicle.X: {type: sensor, datatype: float, max: high}", "max"),
    ("Vehicle: {type: branch}\nVehicle.X: {type: sensor, datatype: float, period_ms: 0}",
     "period_ms"),
    ("- just a list", "a map"),
    ("Vehicle: [unclosed", "not YAML"),
])
def test_the_vss_loader_refuses_what_it_does_not_read_naming_it(text: str, names: str) -> None:
    with pytest.raises(VssError, match=names.replace("(", r"\(").replace(")", r"\)")):
        parse_vspec(text, "test.vspec")


def test_the_vss_loader_reads_ranges_units_and_extended_attributes() -> None:
    (spec,) = parse_vspec("Vehicle: {type: branch}\nVehicle.X: {type: actuator, datatype: uint8, "
                          "unit: percent, min: 0, max: 100, period_ms: 20, tolerance: 2}")
    assert (spec.path, spec.settable, spec.unit, spec.period_s, spec.tolerance) == \
        ("Vehicle.X", True, "percent", 0.02, 2)
    assert spec.check(100) == "" and spec.check(101) and spec.check(1.5) and spec.check(True)
