"""Broker retention: the writer drops the broker entries every consumer is done with, and only those."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.smart_home import WRITER_GROUP, ReadingWriter, analyzer_group
from systems.smart_home import WRITER
from actors.smart_home.store import ALERTS_TOPIC, MODES_TOPIC, READINGS_TOPIC, open_broker, pack
from actors.storage import DurableLog
from protocols.smart_home import GetWriterStats
from supervisors.spec import ChildSpec, SupervisorSpec
from tests.support.smart_home import home_settings


def first_offset(broker: DurableLog, topic: str) -> int:
    entries = broker.read(topic, 1, 1)
    return entries[0].offset if entries else 0


def test_the_writer_keeps_readings_from_the_slowest_replay_point_and_the_newest_entries(
        make_runtime, tmp_path: Path) -> None:
    settings = home_settings(tmp_path)
    kinds = sorted({s.kind for s in settings.house.sensors})
    broker = open_broker(settings.broker())
    try:
        broker.append(READINGS_TOPIC, [pack([])] * 100)  # already written to the database ...
        broker.commit(WRITER_GROUP, READINGS_TOPIC, 100)
        for n, kind in enumerate(kinds):  # ... and the analyzers' rebuilds start at 31, 41, ...
            broker.commit(f"{analyzer_group(kind)}-replay", READINGS_TOPIC, 30 + 10 * n)
        broker.append(ALERTS_TOPIC, [pack([])] * 5)
        broker.commit(WRITER_GROUP, ALERTS_TOPIC, 5)
        broker.append(MODES_TOPIC, [pack([{"message_id": "m1", "mode": "away", "ts": 1.0}])])
        broker.commit(WRITER_GROUP, MODES_TOPIC, 1)
        args: dict[str, Any] = {"house": settings.house, "mode": "broker",
                                "broker_url": settings.broker(), "storage_url": settings.database(),
                                "retention_every_s": 0.05, "retain_entries": 10}
        rt = make_runtime(SupervisorSpec(children=[
            ChildSpec("writer", ReadingWriter, args, name=WRITER)]), base="simple")

        def first_reading_is(offset: int) -> bool:
            rt.ask(WRITER, GetWriterStats())
            return first_offset(broker, READINGS_TOPIC) == offset

        rt.wait_for(lambda: first_reading_is(31), what="readings dropped up to the slowest analyzer")
        assert broker.read(ALERTS_TOPIC, 1, 10) == [], "the writer is the alerts' only reader"
        assert first_offset(broker, MODES_TOPIC) == 1, "the newest mode change stays"
        for kind in kinds:
            broker.commit(f"{analyzer_group(kind)}-replay", READINGS_TOPIC, 100)
        rt.wait_for(lambda: first_reading_is(91), what="readings dropped but the newest 10")
        stats = rt.ask(WRITER, GetWriterStats())
        assert stats.truncated_entries == 90 and broker.end_offset(READINGS_TOPIC) == 100
    finally:
        broker.close()


def test_an_analyzer_that_never_committed_keeps_every_reading(make_runtime, tmp_path: Path) -> None:
    settings = home_settings(tmp_path)
    broker = open_broker(settings.broker())
    try:
        broker.append(READINGS_TOPIC, [pack([])] * 50)
        broker.commit(WRITER_GROUP, READINGS_TOPIC, 50)  # no analyzer ever committed a replay point
        args: dict[str, Any] = {"house": settings.house, "mode": "broker",
                                "broker_url": settings.broker(), "storage_url": settings.database(),
                                "retention_every_s": 0.01, "retain_entries": 0}
        rt = make_runtime(SupervisorSpec(children=[
            ChildSpec("writer", ReadingWriter, args, name=WRITER)]), base="simple")
        rt.idle(0.3)  # retention every 10 ms, the writer polls every 20 ms: a dozen rounds
        assert rt.ask(WRITER, GetWriterStats()).truncated_entries == 0
        assert first_offset(broker, READINGS_TOPIC) == 1
    finally:
        broker.close()
