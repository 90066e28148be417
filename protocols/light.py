"""How light actors are addressed and how their messages cross process boundaries.

A light actor lives inside a host process-actor. Its address is the host's Thespian address plus a
local id; messages to it from outside its host travel in a ``LightBatch`` to the host, one Thespian
message per destination per scheduler turn. Pure data: the host address is carried opaque.
"""

from __future__ import annotations

from typing import Any

from protocols.message import Message


class LightAddress:
    """Where a light actor lives: ``host`` (a Thespian address), ``host_key`` (its stable string
    form, for hashing; Thespian addresses are unhashable) and ``lid`` (the id inside the host)."""

    __slots__ = ("host", "host_key", "lid")

    def __init__(self, host: Any, host_key: str, lid: int) -> None:
        self.host = host
        self.host_key = host_key
        self.lid = lid

    def __eq__(self, other: object) -> bool:
        return (type(other) is LightAddress and other.lid == self.lid
                and other.host_key == self.host_key)

    def __hash__(self) -> int:
        return hash((self.host_key, self.lid))

    def __reduce__(self) -> tuple[Any, ...]:
        return (LightAddress, (self.host, self.host_key, self.lid))

    def __repr__(self) -> str:
        return f"LightAddress({self.host_key}#{self.lid})"


class LightBatch:
    """Messages for one destination process: ``items`` of ``(lid or None, sender, message)``.

    ``lid`` None means the message is for the receiving process actor itself. ``ack_to`` is set when
    the sender is a host that limits its batches in flight and wants a ``BatchAck``.
    """

    __slots__ = ("items", "ack_to")

    def __init__(self, items: list[tuple[int | None, Any, Any]], ack_to: Any = None) -> None:
        self.items = items
        self.ack_to = ack_to

    def __reduce__(self) -> tuple[Any, ...]:
        return (LightBatch, (self.items, self.ack_to))


class BatchAck:
    """A host received one of our batches: one more may be in flight."""

    __slots__ = ("host_key",)

    def __init__(self, host_key: str) -> None:
        self.host_key = host_key

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchAck, (self.host_key,))


class SpawnLight(Message):
    """Start a light actor in the receiving host on behalf of a supervisor elsewhere."""

    spec: Any
    child_id: str
    path: str
    parent: Any
    root: Any
    incarnation: int


class KillLight(Message):
    """End a light actor at once, without ``on_stop`` (brutal kill); the host says ``ChildGone``."""

    lid: int


class ChildGone(Message):
    """A light child has ended after a stop or a kill (Thespian's ChildActorExited, for light)."""

    address: Any


class MonitorName(Message):
    """Tell me (``NameDown``) when ``name`` is unregistered: its actor, often a host, went down."""

    name: str
    subscriber: Any


class NameDown(Message):
    name: str
    address: Any = None


class HostStatus(Message):
    """Ask a host how it is doing: answered with a ``HostReport``."""


class HostReport(Message):
    pid: int
    lights: int
    spawned: int
    delivered: int
    crashed: int
    dropped_dead: int
    dropped_overflow: int
    batches_out: int
    batches_in: int
