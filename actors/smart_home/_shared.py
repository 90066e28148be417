"""What the smart home's ingest, analyzers and writer share: timer messages, consumer groups,
tuning constants."""

from __future__ import annotations

import logging

from actors.smart_home.store import (
    MODES_TOPIC,
    unpack,
)
from actors.storage import DurableLog

log = logging.getLogger("ptr.smart_home")

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
