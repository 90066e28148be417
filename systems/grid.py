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

from pathlib import Path
from typing import Any

from pydantic import Field

from actors.grid import AlertConsumer, DailyJobActor, GridGateway
from actors.grid.store import fates
from actors.storage import make_engine
from protocols.errors import PtrError
from protocols.grid import ConsumerStats, GatewayStats, GetConsumerStats, GetGatewayStats
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.runtime import free_port
from systems.spec import SystemSettings, SystemSpec

NAME = "grid"
ALERTS = "grid-alerts"
DAILY = "grid-daily"


def gateway_name(index: int) -> str:
    return f"grid-gw-{index}"


class GridSettings(SystemSettings):
    """``[grid]`` in a TOML file, or ``--set KEY=VALUE``.

    ``gateways`` processes serve ``host:port`` together (SO_REUSEPORT). ``log_url``: empty for a
    SQLite file under ``data_dir``, or ``nats://host:port/PREFIX`` for JetStream. ``storage_url``:
    the database (SQLite ``grid.db`` under ``data_dir`` by default, or ``postgresql://...``).
    ``gateway_requirements``: node capabilities a gateway needs (placement across locations).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8450, ge=0, le=65535)
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
    gateway_requirements: dict[str, Any] = Field(default_factory=dict)

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
    gateways = SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec(f"gw-{i}", GridGateway, {
            **common, "gateway_id": f"gw-{i}", "host": settings.host, "port": port,
            "tls": settings.tls, "ca_dir": settings.ca_dir(),
            "version_file": settings.version_file(), "mqtt": settings.mqtt,
            "mqtt_host": settings.mqtt_host, "mqtt_port": settings.mqtt_port,
            "mqtt_prefix": settings.mqtt_prefix, "mqtt_client_id": settings.mqtt_client_id},
            name=gateway_name(i), requirements=settings.gateway_requirements or None)
        for i in range(1, settings.gateways + 1)], intensity=20, period_s=5.0)
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
        for i in range(1, settings.gateways + 1):
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
    out = [f"{scheme}://{settings.host}:{settings.port or '(a free port)'} POST /readings "
           f"(X-Sensor-Id + Bearer token or client certificate), {settings.gateways} gateways"]
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


def listen_ports(settings: GridSettings) -> dict[str, int]:
    return {"port": settings.port} if settings.port else {}


SYSTEM = SystemSpec(
    name=NAME,
    summary="authenticated HTTPS gateways on one port, a durable log, alerts, a daily job",
    build_tree=build_tree, settings_model=GridSettings, status=status, edges=edges,
    listen_ports=listen_ports)

__all__ = ["ALERTS", "DAILY", "NAME", "SYSTEM", "GridSettings", "build_tree", "edges",
           "fate_counts", "gateway_name", "status"]
