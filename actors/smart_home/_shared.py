"""What the smart home's ingest, analyzers and writer share: timer messages, consumer groups, and
``NamedTargets`` (direct mode's way to send by name)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from actors.base import Actor
from actors.smart_home.store import (
    MODES_TOPIC,
    unpack,
)
from actors.storage import DurableLog
from protocols.light import MonitorName, NameDown

log = logging.getLogger("ptr.smart_home")

INGEST = "sh-ingest"
WRITER = "sh-writer"
HTTP_EDGE = "sh-http"
API = "sh-api"
MQTT_EDGE = "sh-mqtt"
SIMULATOR = "sh-simulator"
WRITER_GROUP = "writer"
POLL_INTERVAL_S = 0.02  # the writer; analyzers are given 0.05 by the system (alerts may wait 50 ms)
COMMIT_INTERVAL_S = 0.25
MAX_ENTRIES = 256
REPLAY_SLICE = 2000
MINOR_TOPIC_EVERY = 5
CLOCK_TICK_S = 1.0
RETENTION_EVERY_S = 60.0  # how often the writer drops broker entries every consumer is done with
RETAIN_ENTRIES = 2000     # the newest readings entries are kept: the ingest refills its
                          # duplicate window from them when it restarts


def last_mode(broker: DurableLog) -> str | None:
    """The house mode of the newest change in the broker, if there was one."""
    end = broker.end_offset(MODES_TOPIC)
    if not end:
        return None
    return str(unpack(broker.read(MODES_TOPIC, end, 1)[0].payload)[-1]["mode"])


def analyzer_name(kind: str) -> str:
    """The registered name of the analyzer of ``kind`` (``sh-analyzer-heating``...)."""
    return f"sh-analyzer-{kind}"


def analyzer_group(kind: str) -> str:
    """The analyzer's consumer group; ``<group>-replay`` marks where its rebuild starts."""
    return f"analyzer-{kind}"


class PollBroker:
    """Timer message (and self-sent to continue a backlog): read what the broker has for us."""


class ClockTick:
    """Timer message: run the clock-driven rules (silence, closing hours)."""


class RebuildStep:
    """Self-sent: replay the next slice of the broker into a restarted analyzer's windows."""


class FlushWrites:
    """Timer message: the writer's direct-mode buffer is due."""


class ResolveName:
    """Timer message: ask the registry for ``name`` again."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name




class NamedTargets(Actor):
    """Keeps the current address of registered names (direct mode sends by name): resolved through
    the root, resolved again when the root says a name went down. A message for a name that is not
    resolved right now is dropped and counted; direct mode promises no more."""

    def track_names(self, names: Iterable[str]) -> None:
        self.target_addresses: dict[str, Any] = {}
        self.undelivered = 0
        for name in names:
            self.send(self.root, MonitorName(name=name, subscriber=self.myAddress))
            self.resolve_name(name)

    def resolve_name(self, name: str) -> None:
        def found(address: Any) -> None:
            if address is None:
                self.start_timer(0.05, ResolveName(name))
            else:
                self.target_addresses[name] = address
        self.whereis(name, found)

    def receiveMsg_ResolveName(self, msg: ResolveName, sender: Any) -> None:
        if sender == self.myAddress and self.target_addresses.get(msg.name) is None:
            self.resolve_name(msg.name)

    def receiveMsg_NameDown(self, msg: NameDown, sender: Any) -> None:
        if msg.name in getattr(self, "target_addresses", {}):
            self.target_addresses.pop(msg.name, None)
            self.resolve_name(msg.name)

    def tell_name(self, name: str, message: Any) -> bool:
        address = self.target_addresses.get(name)
        if address is None:
            self.undelivered += 1
            return False
        self.send(address, message)
        return True
