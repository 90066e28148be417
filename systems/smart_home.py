"""System 1, the smart home: sensor readings over HTTPS and MQTT, statistics, rollups and alerts.

    /smart-home
      writer            ReadingWriter     the one database writer (readings, alerts, rollups, modes)
      analyzers/        one_for_one
        heating ...     KindAnalyzer      per kind: every sensor's windows, rollups, alert rules
      ingest            ReadingIngest     checks readings against the house; broker: persists them
      http              HttpEdgeActor     HTTPS ingest, local network only
      mqtt              MqttIngestEdge    MQTT ingest from Mosquitto (settings.mqtt)
      api               SmartHomeApi      HTTPS query API
      simulator         HouseSimulatorActor   a simulated house (settings.simulate)

``ptr run smart-home`` on embedded defaults starts all of it with SQLite files under ``var/``, a
self-signed certificate in ``var/tls``, and a simulated house sending 21 readings a second over
HTTPS with a demo incident script, and prints what arrives once a second. See
docs/systems/smart-home.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from actors.edges import Answer, Route
from actors.edges.http_edge import HttpEdgeActor
from actors.smart_home import KindAnalyzer, ReadingIngest, ReadingWriter
from actors.smart_home.api import LOCAL_NETWORKS, SmartHomeApi
from actors.smart_home.mqtt import TOPIC_PREFIX, MqttIngestEdge
from actors.smart_home.simulator import HouseSimulator, HouseSimulatorActor
from protocols.errors import PtrError
from protocols.smart_home import (
    KINDS,
    GetIngestStats,
    GetWriterStats,
    HouseConfig,
    IngestStats,
    ModeChange,
    ModeSet,
    ReadingBody,
    WriterStats,
    default_house,
)
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.storage import Stored
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec

NAME = "smart-home"


class SmartHomeSettings(SystemSettings):
    """``[smart-home]`` in a TOML file, or ``--set KEY=VALUE``.

    ``mode``: ``broker`` persists every reading before the 200 (nothing acknowledged is lost, even
    when the writer or an analyzer is killed); ``direct`` answers 202 at once and hands readings
    over in memory (faster, loses what a dying actor held).

    ``edge_window`` batches may be in flight from the HTTPS edge to the ingest; a batch waits up to
    ``edge_linger_s`` for more readings before it leaves. At 1,000 readings/s a batch of ~5
    readings cost the ingest ~2 ms of CPU, almost all of it Thespian's round trip; 20 ms of
    lingering makes batches of ~20 and costs at most 20 ms of answer time.

    ``broker_url``: empty for a SQLite file under ``data_dir`` (``broker_synchronous`` FULL: each
    append fsynced before the answer; NORMAL only to measure what that costs), or ``nats://host:port/PREFIX`` for
    NATS JetStream (streams ``PREFIX_<topic>``). ``storage_url``: the database (SQLite under
    ``data_dir`` by default, or ``postgresql://...``).

    MQTT: the broker keeps what sensors publish while ptr is away for ``mqtt_session_expiry_s``
    (12 h), and at most its ``max_queued_messages``: configure Mosquitto with
    ``actors/smart_home/mosquitto.conf`` (sized for 12 h of the house). At start the edge checks
    the queue with ``mqtt_queue_probe`` messages (0: no check) and alerts when it is smaller.

    ``idle_timeout_s``: an HTTPS connection that has not sent a whole request for this long (idle
    between requests, or slow to send one) is closed. With ``host=0.0.0.0`` the self-signed
    certificate names the machine's host names and every interface address.

    Broker retention: every ``broker_retention_every_s`` the writer drops the broker's entries
    that every consumer is done with (readings kept from the analyzers' replay point, about the
    last one to two hours, and at least the newest ``broker_retain_entries``).
    """

    mode: Literal["broker", "direct"] = "broker"
    broker_url: str = ""
    broker_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    host: str = "127.0.0.1"
    http_port: int = Field(default=8443, ge=0, le=65535)
    api_port: int = Field(default=8444, ge=0, le=65535)
    tls: bool = True
    allow: tuple[str, ...] = LOCAL_NETWORKS
    idle_timeout_s: float = Field(default=15.0, gt=0)
    mqtt: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_prefix: str = TOPIC_PREFIX
    mqtt_client_id: str = "ptr-smart-home-ingest"
    mqtt_session_expiry_s: int = 43200
    mqtt_queue_probe: int = Field(default=1001, ge=0)
    simulate: bool = True
    demo: bool = True
    house: HouseConfig = Field(default_factory=default_house)
    writer_poll_s: float = Field(default=0.02, gt=0)
    analyzer_poll_s: float = Field(default=0.05, gt=0)
    max_in_flight: int = Field(default=1024, ge=1)
    edge_window: int = Field(default=2, ge=1)
    edge_linger_s: float = Field(default=0.02, ge=0, le=1)
    broker_retention_every_s: float = Field(default=60.0, gt=0)
    broker_retain_entries: int = Field(default=2000, ge=0)

    def broker(self) -> str:
        if self.broker_url:
            return self.broker_url
        path = Path(self.data_dir) / "smart-home-broker.db"
        suffix = "" if self.broker_synchronous == "FULL" else "?synchronous=NORMAL"
        return f"sqlite:///{path}{suffix}"

    def database(self) -> str:
        return self.resolved_storage_url(NAME)

    def tls_dir(self) -> str | None:
        return str(Path(self.data_dir) / "tls") if self.tls else None


# --- the wiring: every registered name is chosen here, and handed to the actors in their args ------

INGEST = "sh-ingest"
WRITER = "sh-writer"
HTTP_EDGE = "sh-http"
API = "sh-api"
MQTT_EDGE = "sh-mqtt"
SIMULATOR = "sh-simulator"


def analyzer_name(kind: str) -> str:
    """The registered name of the analyzer of ``kind`` (``sh-analyzer-heating``...)."""
    return f"sh-analyzer-{kind}"


def ingest_routes(mode: str) -> list[Route]:
    """Single readings and batches; 200 after persisting (broker) or 202 at once (direct)."""
    answer = Answer.REPLY if mode == "broker" else Answer.ACCEPTED
    return [Route("POST", "/readings", ReadingBody, answer, name="reading", timeout_s=10,
                  response=Stored, summary="one reading"),
            Route("POST", "/readings/batch", list[ReadingBody], answer, name="readings",
                  timeout_s=30, response=Stored, summary="a batch of readings"),
            Route("POST", "/mode", ModeChange, Answer.REPLY, name="mode", timeout_s=10,
                  response=ModeSet, summary="the house is occupied (home) or not (away)")]


def build_tree(settings: SmartHomeSettings) -> SupervisorSpec:
    house = settings.house
    common = {"house": house, "mode": settings.mode, "broker_url": settings.broker(),
              "storage_url": settings.database()}
    kinds = [k for k in KINDS if house.of_kind(k)]
    analyzer_names = {kind: analyzer_name(kind) for kind in kinds}
    analyzers = SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec(kind, KindAnalyzer, {**common, "kind": kind, "writer": WRITER,
                                       "poll_interval_s": settings.analyzer_poll_s},
                  name=analyzer_names[kind])
        for kind in kinds])
    edge = {"host": settings.host, "tls_dir": settings.tls_dir(), "allow": list(settings.allow),
            "idle_timeout_s": settings.idle_timeout_s}
    children = [
        ChildSpec("writer", ReadingWriter, {**common, "poll_interval_s": settings.writer_poll_s,
                                            "retention_every_s": settings.broker_retention_every_s,
                                            "retain_entries": settings.broker_retain_entries},
                  name=WRITER),
        analyzers.as_child("analyzers"),
        ChildSpec("ingest", ReadingIngest, {**common, "writer": WRITER,
                                            "analyzers": analyzer_names}, name=INGEST),
        ChildSpec("http", HttpEdgeActor, {**edge, "port": settings.http_port,
                                          "routes": ingest_routes(settings.mode),
                                          "target": INGEST, "max_body_bytes": 4 << 20,
                                          "title": "ptr smart home ingest",
                                          "max_in_flight": settings.max_in_flight,
                                          "window": settings.edge_window,
                                          "linger_s": settings.edge_linger_s},
                  name=HTTP_EDGE),
    ]
    if settings.mqtt:
        children.append(ChildSpec("mqtt", MqttIngestEdge, {
            "host": settings.mqtt_host, "port": settings.mqtt_port,
            "prefix": settings.mqtt_prefix, "client_id": settings.mqtt_client_id,
            "session_expiry_s": settings.mqtt_session_expiry_s, "target": INGEST,
            "state_dir": settings.data_dir, "queue_probe": settings.mqtt_queue_probe},
            name=MQTT_EDGE))
    children.append(ChildSpec("api", SmartHomeApi, {**edge, "port": settings.api_port,
                                                    "house": house, "storage_url": settings.database(),
                                                    "analyzers": analyzer_names,
                                                    "targets": {"mode": INGEST}},
                              name=API))
    if settings.simulate:
        children.append(ChildSpec("simulator", HouseSimulatorActor, {
            "edge": HTTP_EDGE, "house": house, "tls_dir": settings.tls_dir(),
            "demo": settings.demo}, name=SIMULATOR))
    return SupervisorSpec(Strategy.ONE_FOR_ONE, children)


# --- ptr run: status line, edges, simulator ------------------------------------------------------

_last: dict[int, tuple[float, int, int]] = {}


def status(runtime: Any, settings: SmartHomeSettings) -> str:
    """Readings accepted and stored (and the rate), alerts with the newest one's text, house mode,
    broker lag, and why the storage is unavailable while it is. An actor that is restarting shows
    as such instead of failing the command."""
    try:
        ingest = runtime.ask(INGEST, GetIngestStats(), 2)
        writer = runtime.ask(WRITER, GetWriterStats(), 2)
    except PtrError as exc:
        return f"waiting: {exc}"
    assert isinstance(ingest, IngestStats) and isinstance(writer, WriterStats)
    now = time.monotonic()
    then, stored_before, alerts_before = _last.get(id(runtime), (now, writer.readings,
                                                                 writer.alerts))
    _last[id(runtime)] = (now, writer.readings, writer.alerts)
    rate = (writer.readings - stored_before) / (now - then) if now > then else 0.0
    line = (f"readings accepted {ingest.accepted}, stored {writer.readings} ({rate:.0f}/s), "
            f"alerts {writer.alerts}, house {ingest.mode}")
    if settings.mode == "broker":
        line += f", broker lag {writer.lag_entries}"
    for who, stats in (("ingest", ingest), ("writer", writer)):
        if stats.storage_unavailable:
            line += f"\n  STORAGE UNAVAILABLE ({who}, retrying): {stats.storage_unavailable}"
    if writer.alerts > alerts_before and writer.recent_alerts:
        fresh = writer.recent_alerts[-min(3, writer.alerts - alerts_before):]
        line += "".join(f"\n  ALERT {text}" for text in fresh)
    return line


def metrics(runtime: Any, settings: SmartHomeSettings) -> list[Any]:
    """The smart home's own Prometheus families, for the observer's ``/metrics``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    ingest = runtime.ask(INGEST, GetIngestStats(), 2)
    writer = runtime.ask(WRITER, GetWriterStats(), 2)
    assert isinstance(ingest, IngestStats) and isinstance(writer, WriterStats)
    families = [
        CounterMetricFamily("ptr_smart_home_readings_accepted", "Readings accepted by the "
                            "ingest (this incarnation)", value=ingest.accepted),
        CounterMetricFamily("ptr_smart_home_readings_refused", "Readings refused by the ingest",
                            value=ingest.refused),
        CounterMetricFamily("ptr_smart_home_readings_stored", "Readings stored by the writer "
                            "(this incarnation)", value=writer.readings),
        CounterMetricFamily("ptr_smart_home_alerts_raised", "Alerts stored by the writer",
                            value=writer.alerts),
        GaugeMetricFamily("ptr_smart_home_broker_lag_entries", "Broker entries the writer has "
                          "not stored yet", value=writer.lag_entries),
        GaugeMetricFamily("ptr_smart_home_storage_up", "0 while the broker or database is out",
                          value=0 if ingest.storage_unavailable or writer.storage_unavailable
                          else 1)]
    return families


def edges(settings: SmartHomeSettings) -> list[str]:
    scheme = "https" if settings.tls else "http"

    def port(value: int) -> str:
        return str(value) if value else "(a free port)"
    out = [f"{scheme}://{settings.host}:{port(settings.http_port)} ingest: POST /readings, "
           f"/readings/batch, /mode; clients allowed: {', '.join(settings.allow)}",
           f"{scheme}://{settings.host}:{port(settings.api_port)}/ the dashboard; query: GET "
           f"/sensors, /sensors/ID/readings, /sensors/ID/series, /sensors/ID/chart.png, /rooms, "
           f"/rooms/ID/stats, /alerts, /mode"]
    if settings.mqtt:
        out.append(f"mqtt://{settings.mqtt_host}:{settings.mqtt_port} subscribed to "
                   f"{settings.mqtt_prefix}/readings/#")
    return out


class _SimulatedInTree:
    """``--simulate`` when ``simulate`` is on already: the tree's simulator is the house."""

    def stop(self) -> None:
        """The simulator actor stops with the tree."""


def simulator(runtime: Any, settings: SmartHomeSettings) -> Any:
    """``ptr run smart-home --simulate``: one simulated house, in the tree (``simulate``, the
    default) or, with ``--set simulate=false``, in this process against the ingest edge."""
    if settings.simulate:
        return _SimulatedInTree()
    info = runtime.ask(HTTP_EDGE, GetEdgeInfo(), 10)
    assert isinstance(info, EdgeInfo)
    return HouseSimulator(settings.house, info.url, settings.tls_dir(), demo=settings.demo).start()


def listen_ports(settings: SmartHomeSettings) -> dict[str, int]:
    """The fixed ports the smart home listens on (0: a free one, never in anyone's way)."""
    ports = {"http_port": settings.http_port, "api_port": settings.api_port}
    return {setting: port for setting, port in ports.items() if port}


SYSTEM = SystemSpec(
    name=NAME,
    summary="sensors over HTTPS and MQTT, rolling stats, hourly rollups, alerts, a query API",
    build_tree=build_tree, settings_model=SmartHomeSettings, status=status, edges=edges,
    simulator=simulator, listen_ports=listen_ports, metrics=metrics)

__all__ = ["API", "HTTP_EDGE", "INGEST", "MQTT_EDGE", "NAME", "SIMULATOR", "SYSTEM",
           "SmartHomeSettings", "WRITER", "analyzer_name", "build_tree", "edges", "ingest_routes",
           "metrics",
           "simulator", "status"]
