"""What the smart home's ingest, analyzers and writer share: their typed args, timer messages,
consumer groups, tuning constants."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from actors.smart_home.store import MODES_TOPIC, unpack
from actors.storage import DurableLog
from protocols.message import ActorArgs
from protocols.smart_home import HouseConfig

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


class HomeArgs(ActorArgs):
    """What the ingest, the analyzers and the writer are all given by the system."""

    house: HouseConfig
    mode: Literal["broker", "direct"] = "broker"
    broker_url: str
    storage_url: str


class IngestArgs(HomeArgs):
    writer: str                     # registered names of its peers
    analyzers: dict[str, str]       # sensor kind -> its analyzer's registered name
    max_age_s: float = Field(default=7 * 86400, gt=0)
    max_skew_s: float = Field(default=300, gt=0)
    dedup_window: int = Field(default=50_000, ge=0)


class AnalyzerArgs(HomeArgs):
    kind: str
    writer: str
    poll_interval_s: float = Field(default=POLL_INTERVAL_S, gt=0)
    commit_interval_s: float = Field(default=COMMIT_INTERVAL_S, gt=0)


class WriterArgs(HomeArgs):
    poll_interval_s: float = Field(default=POLL_INTERVAL_S, gt=0)
    commit_interval_s: float = Field(default=COMMIT_INTERVAL_S, gt=0)
    flush_s: float = Field(default=0.05, gt=0)
    max_rows: int = Field(default=2000, ge=1)
    retention_every_s: float = Field(default=RETENTION_EVERY_S, gt=0)
    retain_entries: int = Field(default=RETAIN_ENTRIES, ge=0)
