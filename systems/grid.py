"""System 4, the national electric grid: authenticated gateways, a durable log, real-time alerts, a
daily job into the database, and every reading accounted for.

    /grid
      gateways/         one_for_one
        gw-1 ... gw-N   GridGateway      HTTPS on ONE port (SO_REUSEPORT); appends to the log itself
      alerts            AlertConsumer    consumer group "alerts": rules -> grid_alerts
      daily             DailyJobActor    each finished UTC day of the log -> grid_readings_YYYYMMDD

``ptr run grid`` on embedded defaults: the registry, fates, alerts and daily tables in
``var/grid.db`` (``storage_url`` for PostgreSQL), the log in ``var/grid-log.db`` (``log_url`` for
``nats://host:port/PREFIX``), the grid's CA in ``var/grid-ca``. Provision sensors with
``ptr grid provision FILE.csv``. See docs/systems/grid.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from actors.grid import AlertConsumer, DailyJobActor, GridGateway
from actors.grid.store import fates
from actors.storage import make_engine
from protocols.errors import ConfigError, PtrError
from protocols.grid import (
    READINGS_TOPIC,
    ConsumerStats,
    GatewayStats,
    GetConsumerStats,
    GetGatewayStats,
    Replayed,
    ReplayFrom,
)
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.runtime import free_port
from systems.spec import SystemSettings, SystemSpec, parse_overrides

NAME = "grid"
ALERTS = "grid-alerts"
DAILY = "grid-daily"


def gateway_name(index: int | str) -> str:
    """The registered name of gateway ``index`` (``1``, or ``north-1`` with locations)."""
    return f"grid-gw-{index}"


def gateway_indexes(settings: Any) -> list[str]:
    if settings.locations:
        return [f"{loc}-{i}" for loc in settings.locations for i in range(1, settings.gateways + 1)]
    return [str(i) for i in range(1, settings.gateways + 1)]


class GridSettings(SystemSettings):
    """``[grid]`` in a TOML file, or ``--set KEY=VALUE``.

    ``gateways`` processes serve ``host:port`` together (SO_REUSEPORT). ``log_url``: empty for a
    SQLite file under ``data_dir``, or ``nats://host:port/PREFIX`` for JetStream. ``storage_url``:
    the database (SQLite ``grid.db`` under ``data_dir`` by default, or ``postgresql://...``).
    ``locations``: when set, ``gateways`` gateways per location, each requiring a node with the
    capability ``location=<name>`` (a location's hosts join with ``ptr node start --capability
    location=NAME``); bind ``host = "0.0.0.0"`` then, and name the hosts' addresses in
    ``server_names`` (the gateways' certificate).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8460, ge=0, le=65535)
    gateways: int = Field(default=2, ge=1, le=32)
    tls: bool = True
    log_url: str = ""
    mqtt: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_prefix: str = "ptr/grid"
    mqtt_client_id: str = "ptr-grid"
    alert_poll_s: float = Field(default=0.2, gt=0)
    daily_check_every_s: float = Field(default=300.0, gt=0)
    daily_batch: int = Field(default=1000, ge=1)
    locations: tuple[str, ...] = ()
    sim_sensors: int = Field(default=2000, ge=10)
    sim_period_s: float = Field(default=10.0, gt=0)
    sim_incident_after_s: float = Field(default=20.0, ge=0)
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")

    def log(self) -> str:
        return self.log_url or f"sqlite:///{Path(self.data_dir) / 'grid-log.db'}"

    def database(self) -> str:
        return self.resolved_storage_url(NAME)

    def ca_dir(self) -> str:
        return str(Path(self.data_dir) / "grid-ca")

    def version_file(self) -> str:
        return str(Path(self.data_dir) / "grid-registry.version")


def build_tree(settings: GridSettings) -> SupervisorSpec:
    port = settings.port or free_port()
    common = {"database_url": settings.database(), "log_url": settings.log()}
    placed: list[tuple[str, dict[str, Any] | None]] = (
        [(f"{loc}-{i}", {"location": loc}) for loc in settings.locations
         for i in range(1, settings.gateways + 1)]
        if settings.locations else [(str(i), None) for i in range(1, settings.gateways + 1)])
    gateways = SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec(f"gw-{i}", GridGateway, {
            **common, "gateway_id": f"gw-{i}", "host": settings.host, "port": port,
            "tls": settings.tls, "ca_dir": settings.ca_dir(),
            "server_names": settings.server_names,
            "version_file": settings.version_file(), "mqtt": settings.mqtt,
            "mqtt_host": settings.mqtt_host, "mqtt_port": settings.mqtt_port,
            "mqtt_prefix": settings.mqtt_prefix, "mqtt_client_id": settings.mqtt_client_id},
            name=gateway_name(i), requirements=requirements)
        for i, requirements in placed], intensity=20, period_s=5.0)
    return SupervisorSpec(Strategy.ONE_FOR_ONE, [
        gateways.as_child("gateways"),
        ChildSpec("alerts", AlertConsumer, {**common, "version_file": settings.version_file(),
                                            "poll_s": settings.alert_poll_s}, name=ALERTS),
        ChildSpec("daily", DailyJobActor, {**common, "batch": settings.daily_batch,
                                           "check_every_s": settings.daily_check_every_s},
                  name=DAILY),
    ])


def status(runtime: Any, settings: GridSettings) -> str:
    """Accepted, duplicate and refused readings per gateway, and the alert consumer's position."""
    parts = []
    try:
        for i in gateway_indexes(settings):
            stats = runtime.ask(gateway_name(i), GetGatewayStats(), 2)
            assert isinstance(stats, GatewayStats)
            parts.append(f"{stats.gateway} accepted {stats.accepted} dup {stats.duplicates} "
                         f"refused {sum(stats.refused.values())}")
        consumer = runtime.ask(ALERTS, GetConsumerStats(), 2)
        assert isinstance(consumer, ConsumerStats)
    except PtrError as exc:
        return f"waiting: {exc}"
    return "; ".join(parts) + f"; alerts {consumer.alerts} (offset {consumer.committed})"


def edges(settings: GridSettings) -> list[str]:
    scheme = "https" if settings.tls else "http"
    port = settings.port or "(a free port)"
    out = [(f"{scheme}://{settings.host}:{port} POST /readings (X-Sensor-Id + Bearer token or "
            f"client certificate), {settings.gateways} gateways")]
    if settings.mqtt:
        out.append(f"mqtt://{settings.mqtt_host}:{settings.mqtt_port} "
                   f"{settings.mqtt_prefix}/readings/<sensor_id> (shared subscription)")
    return out


def fate_counts(settings: GridSettings, sensor_id: str | None = None,
                gateway: str | None = None) -> dict[str, int]:
    engine = make_engine(settings.database())
    try:
        return fates(engine, sensor_id=sensor_id, gateway=gateway)
    finally:
        engine.dispose()


def simulator(runtime: Any, settings: GridSettings) -> Any:
    """``ptr run grid --simulate``: ``sim_sensors`` sensors (registered as ``sim-NNNNN``) against
    the gateways over HTTPS, a tenth over MQTT when ``mqtt`` is on; see actors/grid/simulator.py."""
    from actors.grid import SensorRegistry
    from actors.grid.simulator import GridSimulator

    info = runtime.ask(gateway_name(gateway_indexes(settings)[0]), GetGatewayStats(), 30)
    assert isinstance(info, GatewayStats)
    engine = make_engine(settings.database())
    try:
        registry = SensorRegistry(engine, settings.version_file())
        sim = GridSimulator(info.url, settings.ca_dir(), registry, sensors=settings.sim_sensors,
                            period_s=settings.sim_period_s,
                            mqtt_share=0.1 if settings.mqtt else 0.0,
                            mqtt_host=settings.mqtt_host, mqtt_port=settings.mqtt_port,
                            mqtt_prefix=settings.mqtt_prefix,
                            incident_after_s=settings.sim_incident_after_s)
    finally:
        engine.dispose()
    return sim.start()


def listen_ports(settings: GridSettings) -> dict[str, int]:
    return {"port": settings.port} if settings.port else {}


# --- ptr grid ...: the operator's commands --------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptr grid", description="operate the national grid")
    parser.add_argument("--config", type=Path, help="a TOML file of settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("provision", help="register the sensors of a CSV file; prints their tokens")
    p.add_argument("csv", type=Path)
    p = sub.add_parser("revoke", help="revoke a sensor's token and certificate at once")
    p.add_argument("sensor_id")
    p = sub.add_parser("issue-cert", help="a client certificate from the grid's CA for a sensor")
    p.add_argument("sensor_id")
    p.add_argument("out_dir", type=Path)
    p = sub.add_parser("fates", help="every reading's fate, counted (JSON)")
    p.add_argument("--sensor")
    p.add_argument("--gateway")
    p = sub.add_parser("replay", help="re-feed the alert consumers from an offset or a time")
    p.add_argument("--from", dest="start", required=True,
                   help="a log offset (123) or an ISO time (2026-12-05T03:00:00Z)")
    p = sub.add_parser("daily", help="run the daily job now (every finished day, caught up)")
    p.add_argument("--until", help="the last day to copy (YYYY-MM-DD; default yesterday, UTC)")
    return parser


def command(argv: list[str]) -> int:
    """``ptr grid provision|revoke|issue-cert|fates|replay|daily``: on the files and databases of
    the settings given (a running system sees the changes: the registry is watched, and replay
    goes through the running alert consumer when there is one)."""
    from actors.grid import GridCA, SensorRegistry, open_log
    from actors.grid.daily import DailyJob
    from actors.storage import make_engine

    args = _parser().parse_args(argv)
    settings = SYSTEM.settings(args.config, parse_overrides(args.set))
    assert isinstance(settings, GridSettings)
    engine = make_engine(settings.database())
    try:
        registry = SensorRegistry(engine, settings.version_file())
        if args.action == "provision":
            tokens = registry.provision_csv(args.csv)
            print("sensor_id,token")
            for sensor_id, token in tokens.items():
                print(f"{sensor_id},{token}")
        elif args.action == "revoke":
            registry.revoke(args.sensor_id)
            print(f"revoked {args.sensor_id}")
        elif args.action == "issue-cert":
            cert, key, fp = GridCA(settings.ca_dir()).issue_sensor(args.sensor_id, args.out_dir)
            registry.set_certificate(args.sensor_id, fp)
            print(f"{cert}\n{key}\n{fp}")
        elif args.action == "fates":
            print(json.dumps(fates(engine, sensor_id=args.sensor, gateway=args.gateway)))
        elif args.action == "daily":
            log = open_log(settings.log())
            try:
                for report in DailyJob(log, engine, retain_for=("alerts",)).run(args.until):
                    print(report.model_dump_json())
            finally:
                log.close()
        else:
            log = open_log(settings.log())
            try:
                offset = _offset_of(log, args.start)
            finally:
                log.close()
            print(f"alerts replay from offset {replay(settings, offset)}")
    finally:
        engine.dispose()
    return 0


def _offset_of(log: Any, start: str) -> int:
    """``start`` as an offset: an integer, or the first entry the log stored at or after a time."""
    if start.isdigit():
        return max(1, int(start))
    try:
        when = dt.datetime.fromisoformat(start).timestamp()
    except ValueError:
        raise ConfigError(f"--from takes an offset or an ISO time, not {start!r}") from None
    end = log.end_offset(READINGS_TOPIC)
    low, high = 1, end + 1  # the first offset whose entry is at or after ``when``
    while low < high:
        middle = (low + high) // 2
        entries = log.read(READINGS_TOPIC, middle, 1)
        if not entries or entries[0].timestamp >= when:
            high = middle
        else:
            low = entries[0].offset + 1 if entries[0].offset > middle else middle + 1
    return low


def replay(settings: GridSettings, offset: int) -> int:
    """Rewind the alert group so its next entry is ``offset``: through the running consumer if
    the grid runs (it owns the group's position), else in the log directly."""
    from actors.grid import open_log
    from systems import runfile
    from systems.runtime import ActorRuntime, set_cookie

    try:
        info = runfile.find_system(NAME)
    except PtrError:
        info = None
    if info is not None:
        if info.cookie:
            set_cookie(info.cookie)
        runtime = ActorRuntime.attach(info.admin_port, info.root_address(), name=info.name)
        answer = runtime.ask(ALERTS, ReplayFrom(offset=offset), 10)
        assert isinstance(answer, Replayed)
        return answer.committed + 1
    log = open_log(settings.log())
    try:
        log.commit("alerts", READINGS_TOPIC, min(offset - 1, log.end_offset(READINGS_TOPIC)))
        return log.committed("alerts", READINGS_TOPIC) + 1
    finally:
        log.close()


SYSTEM = SystemSpec(
    name=NAME,
    summary="authenticated HTTPS gateways on one port, a durable log, alerts, a daily job",
    build_tree=build_tree, settings_model=GridSettings, status=status, edges=edges,
    simulator=simulator, listen_ports=listen_ports, command=command)

__all__ = ["ALERTS", "DAILY", "NAME", "SYSTEM", "GridSettings", "build_tree", "edges",
           "fate_counts", "gateway_name", "status"]
