"""The smart home's query API: an HTTP edge (``HttpEdgeActor``) with declared routes that read the
database, and ask the analyzers for the rolling statistics they keep in memory.

    GET /sensors                              every installed sensor and its latest stored reading
    GET /sensors/{id}/readings?since=&until=  stored readings, oldest first (limit=, at most 100k)
    GET /sensors/{id}/chart.png?metric=&hours=  a PNG of one metric over the last 24 h (hours=)
    GET /rooms                                the rooms and their sensors
    GET /rooms/{id}/stats                     min, max, mean over the last minute, hour and day
    GET /alerts?since=&until=&rule=&sensor_id=&limit=   newest first
    GET /sensors/{id}/series?metric=&hours=   chart points (1 h: raw buckets; longer: rollups)
    GET /alerts/open                          the alert conditions that hold now
    GET /mode, POST /mode                     the house mode (POST is forwarded to the ingest)
    GET /                                     the dashboard (plain HTML, CSS and JS, no CDN)
    GET /health, GET /metrics, GET /openapi.json   as every ptr edge

Times are Unix seconds or ISO 8601; an empty parameter is an absent one. Every error is JSON with
its refusal kind: 400 names the bad parameter, 403 a client outside the allowlist, 404 an unknown
sensor, room or path, 503 while the database or an analyzer is unavailable, 504 when the analyzers
do not answer in time.

Database reads are ``loop_handler`` routes: they run on the edge's loop and send each query to its
thread pool, never blocking the loop, and touch only what ``start_edge`` set before serving (the
house and the engine). Room statistics are a ``handler`` route: this actor asks each analyzer with
sensors in the room (one request per kind, in parallel; ``args["analyzers"]`` maps kinds to their
registered names) and answers later with the merged result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from actors.edges import ANSWER_LATER, Answer, Inbound, Route
from actors.edges.http_edge import HttpEdgeActor, HttpEdgeArgs
from actors.smart_home.chart import chart_png
from actors.smart_home.store import (
    alerts_between,
    chart_series,
    history,
    latest_mode,
    latest_readings,
    readings_between,
)
from actors.storage import make_engine
from protocols.errors import InvalidMessageError, RefusalKind, RefusedError
from protocols.smart_home import (
    METRICS,
    UNITS,
    AlertRule,
    GetOpenAlerts,
    GetRoomStats,
    HouseConfig,
    ModeChange,
    ModeSet,
    OpenAlerts,
    RoomStats,
)

__all__ = [
    "LOCAL_NETWORKS",
    "AlertList",
    "AlertsQuery",
    "ChartQuery",
    "ReadingsQuery",
    "RoomList",
    "RoomPath",
    "SensorList",
    "SensorReadings",
    "SensorSeries",
    "SeriesQuery",
    "SmartHomeApi",
    "SmartHomeApiArgs",
    "parse_time",
    "query_routes",
]

T = TypeVar("T")

LOCAL_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                  "169.254.0.0/16", "fc00::/7", "fe80::/10")
"""The home's local network: loopback, the private IPv4 ranges (RFC 1918), link-local, and IPv6
unique-local and link-local. Everyone else gets 403."""

MAX_READINGS = 100_000
STATS_TIMEOUT_S = 5.0


def parse_time(raw: Any) -> float:
    """A query parameter as Unix seconds: a number, or ISO 8601 (naive means UTC). Raises
    ``ValueError`` (a 400 naming the parameter) for anything else."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = str(raw)
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{text!r} is neither Unix seconds nor ISO 8601") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            value = parsed.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite time")
    return value


def _time_or_none(raw: Any) -> float | None:
    return None if raw is None else parse_time(raw)


Time = Annotated[float | None, BeforeValidator(_time_or_none), WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
     "description": "Unix seconds or ISO 8601 (naive means UTC)"})]
"""A time parameter, absent or valid; a bad one is a 400 naming it."""


# --- parameters ---------------------------------------------------------------------------------

class _Query(BaseModel):
    """Query and path parameters: an empty value is an absent one; unknown ones are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {key: value for key, value in raw.items() if value != ""}
        return raw


class SensorPath(_Query):
    sensor_id: str


class ReadingsQuery(SensorPath):
    since: Time = Field(default=None, description="default: an hour before until")
    until: Time = Field(default=None, description="default: now")
    limit: int = Field(default=10_000, ge=1, le=MAX_READINGS)


class ChartQuery(SensorPath):
    metric: str | None = Field(default=None, description="default: the kind's first metric")
    hours: int = Field(default=24, ge=1, le=24 * 7)


class SeriesQuery(SensorPath):
    metric: str | None = Field(default=None, description="default: the kind's first metric")
    hours: int = Field(default=1, ge=1, le=24 * 7, description="1, 24 or 168 on the dashboard")


class RoomPath(_Query):
    room: str


class AlertsQuery(_Query):
    since: Time = Field(default=None, description="default: a day before until")
    until: Time = Field(default=None, description="default: now")
    rule: AlertRule | None = None
    sensor_id: str | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


# --- answers (documentation: the OpenAPI document and the contract test check them) --------------

class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoredReading(BaseModel):
    """A stored reading in its kind's shape (its metrics follow) with its arrival times."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str
    sensor_id: str
    message_id: str
    ts: float
    received_at: float
    stored_at: float


class SensorInfo(_Answer):
    sensor_id: str
    kind: str
    room: str
    metrics: dict[str, str] = Field(description="metric -> unit")
    power_limit: float | None = None
    temperature_range: list[float] | None = None


class SensorLatest(SensorInfo):
    latest: StoredReading | None


class SensorList(_Answer):
    count: int
    sensors: list[SensorLatest]


class SensorReadings(SensorInfo):
    since: float
    until: float
    count: int
    truncated: bool
    readings: list[StoredReading]


class RoomSensors(_Answer):
    room: str
    sensors: list[str]


class RoomList(_Answer):
    rooms: list[RoomSensors]


class StoredAlert(_Answer):
    alert_id: str
    rule: str
    sensor_id: str
    room: str
    kind: str
    ts: float
    value: float | None = None
    threshold: float | None = None
    text: str
    stored_at: float | None = None


class SensorSeries(_Answer):
    sensor_id: str
    metric: str
    unit: str
    since: float
    until: float
    source: str = Field(description="readings (raw, bucketed) or rollups (hourly)")
    points: list[list[float]] = Field(description="[start, mean, min, max] per bucket")
    limits: list[float] = Field(description="the alert limits of this metric, if any")


class HouseModeNow(_Answer):
    mode: str


class AlertList(_Answer):
    since: float
    until: float
    count: int
    alerts: list[StoredAlert]


def _bad(field: str, error: str) -> InvalidMessageError:
    return InvalidMessageError(f"invalid query parameter {field}: {error}", kind="query",
                               errors=[{"field": field, "error": error}])


def _unknown_sensor(sensor_id: str) -> RefusedError:
    return RefusedError("unknown sensor", refusal=RefusalKind.NOT_FOUND, sensor_id=sensor_id)


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One database read on the loop's thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


# --- the handlers: database reads on the loop, statistics in the actor ------------------------------

async def list_sensors(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    def read() -> list[dict[str, Any]]:
        latest = latest_readings(api.engine, (s.sensor_id for s in api.house.sensors))
        return [{**api.sensor_json(s.sensor_id), "latest": latest[s.sensor_id]}
                for s in api.house.sensors]
    items = await _db(read)
    return {"count": len(items), "sensors": items}


async def sensor_readings(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    query: ReadingsQuery = inbound.params
    if query.sensor_id not in api.sensor_config:
        raise _unknown_sensor(query.sensor_id)
    until = query.until if query.until is not None else time.time()
    since = query.since if query.since is not None else until - 3600
    if since > until:
        raise _bad("since", "must not be after until")
    rows = await _db(readings_between, api.engine, query.sensor_id, since, until, query.limit + 1)
    return {**api.sensor_json(query.sensor_id), "since": since, "until": until,
            "count": min(len(rows), query.limit), "truncated": len(rows) > query.limit,
            "readings": rows[:query.limit]}


def _metric_window(api: SmartHomeApi, sensor_id: str, metric: str | None,
                   hours: float) -> tuple[str, float, float]:
    """The metric a chart or series shows (the sensor's first by default) and its time window
    ending now; unknown sensors are 404, a metric the sensor lacks 400."""
    if sensor_id not in api.sensor_config:
        raise _unknown_sensor(sensor_id)
    metrics = METRICS[api.sensor_config[sensor_id].kind]
    chosen = metric or metrics[0]
    if chosen not in metrics:
        raise _bad("metric", f"{sensor_id} has {', '.join(metrics)}")
    until = time.time()
    return chosen, until - hours * 3600, until


async def sensor_chart(api: SmartHomeApi, inbound: Inbound) -> bytes:
    query: ChartQuery = inbound.params
    metric, since, until = _metric_window(api, query.sensor_id, query.metric, query.hours)
    bucket_s = query.hours * 3600 / 960
    series = await _db(chart_series, api.engine, query.sensor_id, metric, since, until, bucket_s)
    return await _db(chart_png, series, since, until)


async def sensor_history(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    query: SeriesQuery = inbound.params
    metric, since, until = _metric_window(api, query.sensor_id, query.metric, query.hours)
    source, points = await _db(history, api.engine, query.sensor_id, metric, since, until)
    return {"sensor_id": query.sensor_id, "metric": metric, "unit": UNITS[metric],
            "since": since, "until": until, "source": source,
            "points": [list(p) for p in points], "limits": api.limits(query.sensor_id, metric)}


async def house_mode(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    return {"mode": await _db(latest_mode, api.engine) or "home"}


async def dashboard_page(api: SmartHomeApi, inbound: Inbound) -> bytes:
    return DASHBOARD["index.html"]


async def dashboard_script(api: SmartHomeApi, inbound: Inbound) -> bytes:
    return DASHBOARD["dashboard.js"]


async def dashboard_style(api: SmartHomeApi, inbound: Inbound) -> bytes:
    return DASHBOARD["dashboard.css"]


DASHBOARD = {name: (Path(__file__).with_name("dashboard") / name).read_bytes()
             for name in ("index.html", "dashboard.js", "dashboard.css")}
"""The dashboard's files, read once: plain HTML, CSS and JS drawing SVG from the JSON API."""


async def list_rooms(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    return {"rooms": [{"room": room, "sensors": ids} for room, ids in sorted(api.rooms.items())]}


async def list_alerts(api: SmartHomeApi, inbound: Inbound) -> dict[str, Any]:
    query: AlertsQuery = inbound.params
    until = query.until if query.until is not None else time.time()
    since = query.since if query.since is not None else until - 86400
    if since > until:
        raise _bad("since", "must not be after until")
    rows = await _db(alerts_between, api.engine, since, until, rule=query.rule,
                     sensor_id=query.sensor_id, limit=query.limit)
    return {"since": since, "until": until, "count": len(rows), "alerts": rows}


def room_stats(api: SmartHomeApi, inbound: Inbound) -> Any:
    """In the actor: ask every analyzer with sensors in the room; answer once all have, or fail
    on the first failure (503 for an analyzer that is down, 504 for one that does not answer)."""
    room = inbound.params.room
    kinds = api.room_kinds.get(room)
    if kinds is None:
        raise RefusedError("unknown room", refusal=RefusalKind.NOT_FOUND, room=room,
                           rooms=sorted(api.rooms))
    pending = inbound.pending
    parts: list[RoomStats] = []

    def answered(answer: Any) -> None:
        if not isinstance(answer, RoomStats):
            pending.fail(TypeError(f"an analyzer answered {type(answer).__name__}"))
            return
        parts.append(answer)
        if len(parts) == len(kinds):
            sensors = sorted((s for p in parts for s in p.sensors), key=lambda s: s.sensor_id)
            pending.resolve(RoomStats(room=room, at=max(p.at for p in parts), sensors=sensors))

    for kind in kinds:
        api.ask_target(api.analyzers[kind], GetRoomStats(room=room), answered, pending.fail,
                       STATS_TIMEOUT_S)
    return ANSWER_LATER


def open_alerts(api: SmartHomeApi, inbound: Inbound) -> Any:
    """In the actor: ask every analyzer which alert conditions hold now; merge the answers."""
    pending = inbound.pending
    names = sorted(api.analyzers.values())
    parts: list[OpenAlerts] = []

    def answered(answer: Any) -> None:
        if not isinstance(answer, OpenAlerts):
            pending.fail(TypeError(f"an analyzer answered {type(answer).__name__}"))
            return
        parts.append(answer)
        if len(parts) == len(names):
            alerts = sorted((a for p in parts for a in p.alerts),
                            key=lambda a: (a.room, a.sensor_id, a.rule))
            pending.resolve(OpenAlerts(at=max(p.at for p in parts), alerts=alerts))

    if not names:
        return OpenAlerts(at=time.time(), alerts=[])
    for name in names:
        api.ask_target(name, GetOpenAlerts(), answered, pending.fail, STATS_TIMEOUT_S)
    return ANSWER_LATER


def query_routes() -> list[Route]:
    """The query API's route table."""
    sensor_missing = (RefusalKind.NOT_FOUND,)
    return [
        Route("GET", "/sensors", answer=Answer.REPLY, name="sensors", response=SensorList,
              loop_handler=list_sensors, summary="every sensor and its latest stored reading"),
        Route("GET", "/sensors/{sensor_id}/readings", answer=Answer.REPLY, name="readings",
              params=ReadingsQuery, response=SensorReadings, loop_handler=sensor_readings,
              refuses=sensor_missing, summary="a sensor's stored readings, oldest first"),
        Route("GET", "/sensors/{sensor_id}/chart.png", answer=Answer.REPLY, name="chart",
              params=ChartQuery, loop_handler=sensor_chart, refuses=sensor_missing,
              media_type="image/png", summary="a PNG of one metric over the last hours"),
        Route("GET", "/rooms", answer=Answer.REPLY, name="rooms", response=RoomList,
              loop_handler=list_rooms, summary="the rooms and their sensors"),
        Route("GET", "/rooms/{room}/stats", answer=Answer.REPLY, name="room-stats",
              params=RoomPath, response=RoomStats, handler=room_stats,
              timeout_s=STATS_TIMEOUT_S + 1, refuses=(RefusalKind.NOT_FOUND,),
              summary="min, max and mean of each metric over the last minute, hour and day"),
        Route("GET", "/alerts", answer=Answer.REPLY, name="alerts", params=AlertsQuery,
              response=AlertList, loop_handler=list_alerts, summary="alerts, newest first"),
        Route("GET", "/alerts/open", answer=Answer.REPLY, name="open-alerts",
              response=OpenAlerts, handler=open_alerts, timeout_s=STATS_TIMEOUT_S + 1,
              summary="the alert conditions that hold now (fired, not cleared)"),
        Route("GET", "/sensors/{sensor_id}/series", answer=Answer.REPLY, name="series",
              params=SeriesQuery, response=SensorSeries, loop_handler=sensor_history,
              refuses=sensor_missing, summary="chart points of one metric, with its limits"),
        Route("GET", "/mode", answer=Answer.REPLY, name="house-mode", response=HouseModeNow,
              loop_handler=house_mode, summary="the house mode as stored"),
        Route("POST", "/mode", ModeChange, Answer.REPLY, name="mode", timeout_s=10,
              response=ModeSet, summary="set the house mode (handed to the ingest)"),
        Route("GET", "/", answer=Answer.REPLY, name="dashboard", loop_handler=dashboard_page,
              media_type="text/html", summary="the dashboard"),
        Route("GET", "/dashboard.js", answer=Answer.REPLY, name="dashboard-js",
              loop_handler=dashboard_script, media_type="text/javascript",
              summary="the dashboard's script"),
        Route("GET", "/dashboard.css", answer=Answer.REPLY, name="dashboard-css",
              loop_handler=dashboard_style, media_type="text/css",
              summary="the dashboard's style"),
    ]


class SmartHomeApiArgs(HttpEdgeArgs):
    """The query API's arguments: the edge's (with the API's own defaults) and what it reads."""

    house: HouseConfig
    storage_url: str
    analyzers: dict[str, str]
    window: int = Field(default=16, ge=1)
    allow: list[str] = Field(default_factory=lambda: list(LOCAL_NETWORKS))
    max_body_bytes: int = Field(default=1 << 16, ge=1)
    title: str | None = "ptr smart home query API"


class SmartHomeApi(HttpEdgeActor):
    """The query API as a supervised HTTP edge. Restarts like ``HttpEdgeActor`` (same port again,
    or a fresh free one for port 0); a crash answers what was waiting with 503.

    Args: ``house``, ``storage_url``, ``analyzers`` (``{kind: registered name}``), ``targets``
    (``{"mode": the ingest's registered name}``: ``POST /mode`` is handed to it), and the edge's:
    ``host`` (127.0.0.1), ``port`` (0), ``tls_dir`` (HTTPS, self-signed pair made there) or none
    (plain HTTP), ``allow`` (``LOCAL_NETWORKS``), ``window`` (16).
    """

    Args = SmartHomeApiArgs

    def routes(self) -> list[Route]:
        return query_routes()

    def start_edge(self) -> Any:
        """Everything the loop handlers read is set before the server starts, and never changed."""
        args: SmartHomeApiArgs = self.edge_args
        self.house: HouseConfig = args.house
        self.analyzers: dict[str, str] = dict(args.analyzers)
        self.sensor_config = self.house.by_id()
        self.rooms: dict[str, list[str]] = {}
        for sensor in self.house.sensors:
            self.rooms.setdefault(sensor.room, []).append(sensor.sensor_id)
        self.room_kinds = {room: sorted({self.sensor_config[s].kind for s in ids})
                           for room, ids in self.rooms.items()}
        self.engine = make_engine(args.storage_url)
        return super().start_edge()

    def stop_edge(self) -> None:
        try:
            super().stop_edge()
        finally:
            if getattr(self, "engine", None) is not None:
                self.engine.dispose()

    def target_names(self) -> list[str]:
        forwarded = list(self.edge_args.targets.values())
        return [name for _kind, name in sorted(self.analyzers.items())] + forwarded

    def limits(self, sensor_id: str, metric: str) -> list[float]:
        """The alert limits drawn on a chart of ``metric``: a temperature's range, a circuit's
        power limit."""
        sensor = self.sensor_config[sensor_id]
        if metric == "temperature" and sensor.kind in ("heating", "meteo"):
            return list(self.house.temperature_range(sensor))
        if metric == "power" and sensor.power_limit is not None:
            return [sensor.power_limit]
        return []

    def sensor_json(self, sensor_id: str) -> dict[str, Any]:
        """A sensor as the API describes it: kind, room, metrics with units, its limits."""
        sensor = self.sensor_config[sensor_id]
        out: dict[str, Any] = {"sensor_id": sensor_id, "kind": sensor.kind, "room": sensor.room,
                               "metrics": {m: UNITS[m] for m in METRICS[sensor.kind]}}
        if sensor.power_limit is not None:
            out["power_limit"] = sensor.power_limit
        if sensor.kind in ("heating", "meteo"):
            out["temperature_range"] = list(self.house.temperature_range(sensor))
        return out
