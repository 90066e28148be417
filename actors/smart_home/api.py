"""The smart home's query API: an HTTPS edge that reads the database, and asks the analyzers for the
rolling statistics they keep in memory.

    GET /sensors                              every installed sensor and its latest stored reading
    GET /sensors/{id}/readings?since=&until=  stored readings, oldest first (limit=, at most 100k)
    GET /sensors/{id}/chart.png?metric=&hours=  a PNG of one metric over the last 24 h (hours=)
    GET /rooms                                the rooms and their sensors
    GET /rooms/{id}/stats                     min, max, mean over the last minute, hour and day
    GET /alerts?since=&until=&rule=&sensor_id=&limit=   newest first
    GET /health, GET /metrics                 as every ptr edge

Times are Unix seconds or ISO 8601. Every error is JSON: 400 names the bad parameter, 403 a client
outside the allowlist, 404 an unknown sensor, room or path, 503/504 when the analyzers cannot
answer.

The app is ``actors.edges.build_app`` (allowlist, JSON errors, metrics) with these GET routes added
to it. Database reads run on the loop's thread pool, never on the loop; statistics travel through
the edge's bridge to this actor, which asks each analyzer that has sensors in the room (one request
per kind, in parallel) and answers with the merged result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from actors.smart_home.chart import chart_png
from actors.smart_home.store import (
    alerts_between,
    chart_series,
    latest_readings,
    readings_between,
)
from aiohttp import web

from actors.edges import (
    EdgeBridge,
    HttpServer,
    Inbound,
    Pending,
    build_app,
    self_signed_context,
)
from actors.edges.http_edge import LOOP_CALL_TIMEOUT_S, BridgedEdge
from actors.storage import make_engine
from protocols.errors import InvalidMessageError, RequestTimeoutError
from protocols.smart_home import METRICS, UNITS, GetRoomStats, HouseConfig, RoomStats
from protocols.edges import EdgeInfo, GetEdgeInfo

__all__ = ["LOCAL_NETWORKS", "SmartHomeApi", "parse_time"]

T = TypeVar("T")

LOCAL_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                  "169.254.0.0/16", "fc00::/7", "fe80::/10")
"""The home's local network: loopback, the private IPv4 ranges (RFC 1918), link-local, and IPv6
unique-local and link-local. Everyone else gets 403."""

MAX_READINGS = 100_000
STATS_TIMEOUT_S = 5.0
ALERT_RULES = ("temperature_out_of_range", "motion_while_away", "power_over_limit",
               "sensor_silent")


def parse_time(name: str, raw: str | None, default: float) -> float:
    """A query parameter as Unix seconds: a number, or ISO 8601 (naive means UTC)."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(name, f"{raw!r} is neither Unix seconds nor ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        value = parsed.timestamp()
    if not math.isfinite(value):
        raise _bad(name, f"{raw!r} is not a finite time")
    return value


def _int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"{raw!r} is not an integer") from None
    if not low <= value <= high:
        raise _bad(name, f"must be between {low} and {high}")
    return value


def _bad(field: str, error: str) -> InvalidMessageError:
    return InvalidMessageError(f"invalid query parameter {field}: {error}", kind="query",
                               errors=[{"field": field, "error": error}])


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload, separators=(",", ":")).encode(),
                        content_type="application/json")


def _not_found(what: str, **context: Any) -> web.Response:
    return _json({"error": f"unknown {what}", **context}, 404)


class SmartHomeApi(BridgedEdge):
    """The query API as a supervised edge. Restarts like ``HttpEdgeActor`` (same port again, or a
    fresh free one for port 0); a crash answers what was waiting with 503.

    Args: ``house``, ``db_url``, ``host`` (127.0.0.1), ``port`` (0), ``tls_dir`` (HTTPS, self-signed
    pair made there) or none (plain HTTP), ``allow`` (``LOCAL_NETWORKS``), ``window`` (16).
    """

    server: HttpServer | None = None

    def on_start(self) -> None:
        self.args = {"window": 16, **self.args}
        super().on_start()

    def start_edge(self) -> EdgeBridge[Any]:
        args = self.args
        self.house: HouseConfig = args["house"]
        self.sensor_config = self.house.by_id()
        self.rooms: dict[str, list[str]] = {}
        for sensor in self.house.sensors:
            self.rooms.setdefault(sensor.room, []).append(sensor.sensor_id)
        self.room_kinds = {room: sorted({self.sensor_config[s].kind for s in ids})
                           for room, ids in self.rooms.items()}
        self.engine = make_engine(str(args["db_url"]))
        self.host = str(args.get("host", "127.0.0.1"))
        tls_dir = args.get("tls_dir")
        ssl_context = self_signed_context(str(tls_dir)) if tls_dir else None
        self.scheme = "https" if ssl_context is not None else "http"
        bridge: EdgeBridge[Any] = EdgeBridge(max_in_flight=int(args.get("max_in_flight", 256)))
        app = build_app([], bridge=bridge, max_body_bytes=1 << 16,
                        allow_networks=list(args.get("allow", LOCAL_NETWORKS)))
        self.add_routes(app, bridge)
        self.server = HttpServer(app, host=self.host, port=int(args.get("port", 0)),
                                 ssl_context=ssl_context, shutdown_timeout_s=1.0)
        assert self.loop_thread is not None
        self.port = self.loop_thread.run(self.server.start(), LOOP_CALL_TIMEOUT_S)
        return bridge

    def stop_edge(self) -> None:
        try:
            if self.server is not None and self.loop_thread is not None:
                self.loop_thread.run(self.server.stop(), LOOP_CALL_TIMEOUT_S)
        finally:
            if getattr(self, "engine", None) is not None:
                self.engine.dispose()

    def target_names(self) -> list[str]:
        return [str(name) for _kind, name in sorted(dict(self.args["analyzers"]).items())]

    def receiveMsg_GetEdgeInfo(self, msg: GetEdgeInfo, sender: Any) -> EdgeInfo:
        return EdgeInfo(scheme=self.scheme, host=self.host, port=self.port,
                        incarnation=self.incarnation)

    # --- room statistics through the actors ------------------------------------------------------

    def send_drained(self, drained: list[Pending[Any]]) -> None:
        for pending in drained:
            self.gather_stats(pending)

    def gather_stats(self, pending: Pending[Any]) -> None:
        """Ask every analyzer with sensors in the room; answer once all have, or fail on the first
        failure (503/504 for the client)."""
        room = str(pending.item.body)
        kinds = self.room_kinds.get(room, [])
        parts: list[RoomStats] = []
        if not kinds:
            pending.resolve({"room": room, "at": time.time(), "sensors": []})
            return

        def answered(answer: Any) -> None:
            if not isinstance(answer, RoomStats):
                pending.fail(TypeError(f"an analyzer answered {type(answer).__name__}"))
                return
            parts.append(answer)
            if len(parts) == len(kinds):
                sensors = sorted((s for p in parts for s in p.sensors), key=lambda s: s.sensor_id)
                pending.resolve({"room": room, "at": max(p.at for p in parts),
                                 "sensors": [s.model_dump() for s in sensors]})

        for kind in kinds:
            self.ask_target(str(self.args["analyzers"][kind]), GetRoomStats(room=room), answered,
                            pending.fail, STATS_TIMEOUT_S)

    # --- the HTTP side (runs on the loop thread; touches only immutable config) -----------------

    def add_routes(self, app: web.Application, bridge: EdgeBridge[Any]) -> None:
        engine, house, config, rooms = self.engine, self.house, self.sensor_config, self.rooms

        async def db(fn: Callable[..., T], *args: Any) -> T:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, functools.partial(fn, *args))

        def sensor_json(sensor_id: str) -> dict[str, Any]:
            sensor = config[sensor_id]
            out: dict[str, Any] = {"sensor_id": sensor_id, "kind": sensor.kind, "room": sensor.room,
                                   "metrics": {m: UNITS[m] for m in METRICS[sensor.kind]}}
            if sensor.power_limit is not None:
                out["power_limit"] = sensor.power_limit
            if sensor.kind in ("heating", "meteo"):
                out["temperature_range"] = list(house.temperature_range(sensor))
            return out

        def all_sensors() -> list[dict[str, Any]]:
            latest = latest_readings(engine, (s.sensor_id for s in house.sensors))
            return [{**sensor_json(s.sensor_id), "latest": latest[s.sensor_id]}
                    for s in house.sensors]

        async def sensors(request: web.Request) -> web.StreamResponse:
            items = await db(all_sensors)
            return _json({"count": len(items), "sensors": items})

        async def readings(request: web.Request) -> web.StreamResponse:
            sensor_id = request.match_info["sensor_id"]
            if sensor_id not in config:
                return _not_found("sensor", sensor_id=sensor_id)
            now = time.time()
            until = parse_time("until", request.query.get("until"), now)
            since = parse_time("since", request.query.get("since"), until - 3600)
            if since > until:
                raise _bad("since", "must not be after until")
            limit = _int("limit", request.query.get("limit"), 10_000, 1, MAX_READINGS)
            rows = await db(readings_between, engine, sensor_id, since, until, limit + 1)
            return _json({**sensor_json(sensor_id), "since": since, "until": until,
                          "count": min(len(rows), limit), "truncated": len(rows) > limit,
                          "readings": rows[:limit]})

        async def chart(request: web.Request) -> web.StreamResponse:
            sensor_id = request.match_info["sensor_id"]
            if sensor_id not in config:
                return _not_found("sensor", sensor_id=sensor_id)
            metrics = METRICS[config[sensor_id].kind]
            metric = request.query.get("metric") or metrics[0]
            if metric not in metrics:
                raise _bad("metric", f"{sensor_id} has {', '.join(metrics)}")
            hours = _int("hours", request.query.get("hours"), 24, 1, 24 * 7)
            until = time.time()
            since = until - hours * 3600
            bucket_s = hours * 3600 / 960
            series = await db(chart_series, engine, sensor_id, metric, since, until, bucket_s)
            png = await db(chart_png, series, since, until)
            return web.Response(body=png, content_type="image/png",
                                headers={"Cache-Control": "no-store"})

        async def room_list(request: web.Request) -> web.StreamResponse:
            return _json({"rooms": [{"room": room, "sensors": ids} for room, ids in
                                    sorted(rooms.items())]})

        async def room_stats(request: web.Request) -> web.StreamResponse:
            room = request.match_info["room"]
            if room not in rooms:
                return _not_found("room", room=room, rooms=sorted(rooms))
            try:
                async with asyncio.timeout(STATS_TIMEOUT_S + 1):
                    result = await bridge.submit(Inbound("room-stats", room, request.remote or ""))
            except TimeoutError:
                raise RequestTimeoutError("the analyzers", "GetRoomStats",
                                          STATS_TIMEOUT_S + 1) from None
            return _json(result)

        async def alerts(request: web.Request) -> web.StreamResponse:
            now = time.time()
            until = parse_time("until", request.query.get("until"), now)
            since = parse_time("since", request.query.get("since"), until - 86400)
            if since > until:
                raise _bad("since", "must not be after until")
            rule = request.query.get("rule") or None
            if rule is not None and rule not in ALERT_RULES:
                raise _bad("rule", f"one of {', '.join(ALERT_RULES)}")
            sensor_id = request.query.get("sensor_id") or None
            limit = _int("limit", request.query.get("limit"), 100, 1, 10_000)
            rows = await db(functools.partial(alerts_between, engine, since, until, rule=rule,
                                              sensor_id=sensor_id, limit=limit))
            return _json({"since": since, "until": until, "count": len(rows), "alerts": rows})

        app.router.add_get("/sensors", sensors)
        app.router.add_get("/sensors/{sensor_id}/readings", readings)
        app.router.add_get("/sensors/{sensor_id}/chart.png", chart)
        app.router.add_get("/rooms", room_list)
        app.router.add_get("/rooms/{room}/stats", room_stats)
        app.router.add_get("/alerts", alerts)

