"""The car's language: sensor datagrams on the car's LAN, client datagrams (get, set, subscribe),
and the messages between the signal holders, their store and the runtime.

Two audiences, two forms:

* **Datagrams** (sensors -> a signal holder, 100 a second each; clients <-> a holder): msgpack.
  A sensor sends the array ``[sensor_id, seq, ts, value]`` (``ts``: the sensor's wall clock in
  seconds); a client sends a map with an ``op`` (``get``, ``set``, ``sub``, ``unsub``) and gets maps
  back (``val``, ``ack``, ``err``). Decoded by hand, not through the envelope ``Codec``: a holder
  reads 10,000-30,000 datagrams a second on one core and pydantic per datagram costs microseconds
  it does not have. Every decoder raises ``InvalidMessageError`` for anything malformed, never
  something else, so the holder counts it and reads on.
* **Actor messages**: frozen pydantic ``Message``s, a few a second (stats, peer sync, history
  batches of thousands of rows each), never one per datagram.

Pure data: no Thespian here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack
from pydantic import Field

from protocols.errors import InvalidMessageError
from protocols.message import Message

__all__ = [
    "Alert", "CarStats", "ClientOp", "GetCarStats", "GetSignals", "GetTreeSnapshot", "PeerSet",
    "SensorSample", "SetSignal", "SetSignalResult", "SignalValue", "SignalValues", "TreeSnapshot",
    "decode_client_reply", "decode_datagram", "encode_client_op", "encode_sample",
    "encode_values",
]


# --- datagrams ----------------------------------------------------------------------------------

class SensorSample(NamedTuple):
    """One sensor datagram: who, its own sequence number, when (sensor wall clock, s), what."""

    sensor_id: int
    seq: int
    ts: float
    value: float | int | bool


class ClientOp(NamedTuple):
    """One client datagram: ``op`` and its fields (``paths``, ``rate_hz``, ``path``, ``value``,
    ``tag``) as sent."""

    op: str
    fields: dict[str, Any]


CLIENT_OPS = frozenset({"get", "set", "sub", "unsub"})


def encode_sample(sensor_id: int, seq: int, ts: float, value: float | int | bool) -> bytes:
    data: bytes = msgpack.packb((sensor_id, seq, ts, value))
    return data


def decode_datagram(data: bytes) -> SensorSample | ClientOp:
    """A sensor sample (an array) or a client operation (a map); ``InvalidMessageError`` for
    anything else: undecodable bytes, a wrong shape, wrong field types, an unknown op."""
    try:
        item = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
        raise InvalidMessageError(f"not msgpack: {type(exc).__name__}") from None
    if type(item) is list:
        if len(item) != 4:
            raise InvalidMessageError(f"a sample has 4 fields, not {len(item)}")
        sensor_id, seq, ts, value = item
        if type(sensor_id) is not int or type(seq) is not int or seq < 0:
            raise InvalidMessageError("sensor id and sequence must be integers")
        if type(ts) not in (float, int) or type(value) not in (float, int, bool):
            raise InvalidMessageError("timestamp and value must be numbers")
        return SensorSample(sensor_id, seq, float(ts), value)
    if type(item) is dict:
        op = item.pop("op", None)
        if op not in CLIENT_OPS:
            raise InvalidMessageError(f"unknown op {op!r}")
        return ClientOp(op, item)
    raise InvalidMessageError(f"a datagram is an array or a map, not {type(item).__name__}")


def encode_client_op(op: str, **fields: Any) -> bytes:
    data: bytes = msgpack.packb({"op": op, **fields})
    return data


def encode_values(op: str, rows: list[tuple[Any, ...]], **fields: Any) -> bytes:
    """A ``val`` answer: ``rows`` of ``SignalValue.row()``."""
    data: bytes = msgpack.packb({"op": op, "values": rows, **fields})
    return data


def decode_client_reply(data: bytes) -> dict[str, Any]:
    """What a holder answers a client (clients and tests)."""
    reply = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(reply, dict) or "op" not in reply:
        raise InvalidMessageError("a holder's answer is a map with an op")
    return reply


# --- values ------------------------------------------------------------------------------------

class SignalValue(Message):
    """A signal as a reader sees it: its value, which source gave it (a sensor id, ``set`` for an
    actuator's target, ``None`` before any), the source's timestamp, the age of the value on the
    holder's clock, and its state: ``available``, ``stale`` (no live source: the value is the last
    one known) or ``unknown`` (never had a value)."""

    path: str
    value: float | int | bool | None
    source: str | None
    ts: float
    age_ms: float
    state: str
    seq: int = 0

    def row(self) -> tuple[Any, ...]:
        return (self.path, self.value, self.source, self.ts, round(self.age_ms, 3), self.state,
                self.seq)

    @classmethod
    def from_row(cls, row: list[Any] | tuple[Any, ...]) -> SignalValue:
        path, value, source, ts, age_ms, state, seq = row
        return cls(path=path, value=value, source=source, ts=ts, age_ms=age_ms, state=state,
                   seq=seq)


class Alert(Message):
    """Two live redundant sensors of ``path`` disagree by more than its tolerance."""

    path: str
    sensors: tuple[str, str]
    values: tuple[float, float]
    tolerance: float
    at: float


# --- actor messages ----------------------------------------------------------------------------

class GetSignals(Message):
    """Ask a holder for the current values of ``paths`` (a signal or a branch each)."""

    paths: list[str]


class SignalValues(Message):
    values: list[SignalValue]


class SetSignal(Message):
    """Set an actuator's target value; answered ``SetSignalResult`` (ok, or a refusal kind)."""

    path: str
    value: float | int | bool


class SetSignalResult(Message):
    """``ok``, or ``refusal`` (not_found, forbidden: not an actuator, invalid) and why."""

    ok: bool
    refusal: str = ""
    error: str = ""


class PeerSet(Message):
    """A set a pair member accepted, forwarded to the other member (applied, not forwarded)."""

    path: str
    value: float | int | bool
    ts: float


class GetTreeSnapshot(Message):
    """A restarted pair member asks the other for its state."""


class TreeSnapshot(Message):
    """Every signal's value, source, timestamp, age and state, and each sensor's last sequence,
    the age of its last datagram (s), its last value and that value's timestamp."""

    values: list[SignalValue]
    sensors: dict[int, tuple[int, float, float | int | bool | None, float]]


class GetCarStats(Message):
    reset: bool = False


class CarStats(Message):
    """A holder's counters since it started (``window_s``: since the last reset)."""

    member: str
    pid: int
    incarnation: int
    udp_port: int
    window_s: float
    applied: int
    applied_in_window: int
    received: int
    dropped_undecodable: int
    dropped_unknown_sensor: int
    dropped_out_of_range: int
    dropped_stale_seq: int
    failovers: int
    alerts: int
    active_alerts: list[Alert] = []
    subscribers: int
    notifications: int
    history_sent: int
    history_stored: int
    history_shed: int
    history_buffered: int
    history_failed: int
    synced_from_peer: int = Field(default=0, description="values restored from the peer at start")
