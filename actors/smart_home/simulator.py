"""A simulated house: every sensor sends one JSON reading a second over real HTTPS, following daily
profiles, and (in demo mode) a short script of incidents so that each alert rule fires within the
first minute.

``HouseModel`` makes readings (plain Python, seeded, driven by the wall clock: the profiles follow
the local time of day, the weekday and the season). ``HttpsFleet`` sends them the way sensors do:
one POST per reading, spread over the second, over a few kept-alive TLS connections, retrying with
the same ``message_id`` until the edge acknowledges (so nothing a sensor measured is lost while the
server restarts; a bounded queue per fleet stands for the sensors' own buffers). ``HouseSimulator``
runs both on a ``LoopThread``; ``HouseSimulatorActor`` is the same, supervised in the tree.

Profiles, in short. Outdoors: seasonal mean (2 °C in January, 18 °C in July) plus a daily swing
peaking at 15:00, humidity opposite to temperature, pressure a mean-reverting walk, gusty wind, rain
showers as a two-state Markov chain. Occupancy: away on weekdays 08:00-17:00. Heating: setpoints
of 21 °C by day, 17 °C at night and 18 °C while away, a first-order room model heated through a
proportional valve and cooled towards the outdoor temperature. Motion: bursts whose start rate
depends on the room and the hour, none while away. Electricity: per-circuit appliances (fridge,
kettle, oven at dinner, a washer cycle, evening lights, a heat pump following the heating demand,
an EV charging at night) with an energy meter integrating the power.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from actors.base import Actor
from actors.edges import LoopThread, client_context
from protocols.smart_home import (
    GetSimulatorStats,
    HouseConfig,
    SensorConfig,
    SimulatorStats,
)
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.message import ActorArgs
from protocols.supervision import ExitReason

log = logging.getLogger("ptr.smart_home.sim")

__all__ = ["HouseModel", "HouseSimulator", "HouseSimulatorActor", "HttpsFleet", "Incident",
           "SimulatorArgs"]


# --- the house's physics and habits ---------------------------------------------------------------

def _local(now: float) -> tuple[float, int, int]:
    """(hour of day as a float, weekday 0=Monday, day of year) in local time."""
    t = time.localtime(now)
    return t.tm_hour + t.tm_min / 60 + t.tm_sec / 3600, t.tm_wday, t.tm_yday


def residents_home(now: float) -> bool:
    hour, weekday, _ = _local(now)
    return weekday >= 5 or not 8.0 <= hour < 17.0


def _room_type(room: str) -> str:
    for name in ("living", "kitchen", "bedroom", "kids", "office", "bathroom"):
        if name in room:
            return name
    return "living"


MOTION_START = {  # per-second chance a burst starts, by room type, as (hours, rate) spans
    "living": [((7, 9), 0.02), ((17, 23.5), 0.06)],
    "kitchen": [((6.5, 8.5), 0.06), ((12, 13.5), 0.04), ((17.5, 20.5), 0.06)],
    "bedroom": [((6, 7.5), 0.04), ((21.5, 23.5), 0.03), ((0, 6), 0.002)],
    "kids": [((7, 8), 0.05), ((15, 20), 0.05)],
    "office": [((9, 17), 0.03)],
    "bathroom": [((6, 8), 0.05), ((20.5, 22.5), 0.03)],
}


@dataclass
class Incident:
    """A scripted fault, for the demo: ``what`` happens to ``sensor_id`` from ``start`` to ``end``
    (seconds since the simulation started, within each ``period``)."""

    what: str  # "overload", "hot_room", "intruder", "silent"
    sensor_id: str
    start: float
    end: float


@dataclass
class _SensorState:
    config: SensorConfig
    rng: random.Random
    seq: int = 0
    temperature: float = 20.0
    noise: float = 0.0
    active: bool = False
    energy: float = 0.0
    appliance_until: float = 0.0
    appliance_w: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class HouseModel:
    """Readings for every sensor of ``house`` at a given time, one call per second per sensor.

    Deterministic for a seed and a sequence of times. ``demo`` adds incidents, repeated every
    ``period_s``: a circuit over its limit, a room overheating, motion while the house is away and a
    sensor going silent for 13 s.
    """

    def __init__(self, house: HouseConfig, *, seed: int = 7, started_at: float | None = None,
                 demo: bool = False, period_s: float = 90.0) -> None:
        self.house = house
        self.started_at = time.time() if started_at is None else started_at
        self.boot = uuid.uuid4().hex[:8]
        self.period_s = period_s
        rng = random.Random(seed)
        self.states = {s.sensor_id: _SensorState(s, random.Random(rng.random()))
                       for s in house.sensors}
        for state in self.states.values():
            state.energy = state.rng.uniform(1e5, 5e6)
            state.temperature = 20.5 + state.rng.uniform(-0.5, 0.5)
        self.pressure = 1013.0
        self.raining = False
        self.incidents = self._script(house) if demo else []

    @staticmethod
    def _script(house: HouseConfig) -> list[Incident]:
        def first(kind: str, key: Callable[[SensorConfig], Any] | None = None) -> str | None:
            sensors = house.of_kind(kind)
            if key is not None:
                sensors = sorted(sensors, key=key)
            return sensors[0].sensor_id if sensors else None
        script = []
        circuit = first("electricity", lambda s: -(s.power_limit or 0))
        if circuit:
            script.append(Incident("overload", circuit, 3, 8))
        room = first("heating")
        if room:
            script.append(Incident("hot_room", room, 10, 40))
        motion = first("motion")
        if motion:
            script.append(Incident("intruder", motion, 22, 30))
        quiet = first("meteo") or first("heating")
        if quiet:
            script.append(Incident("silent", quiet, 45, 58))
        return script

    def incident(self, what: str, sensor_id: str | None, now: float) -> bool:
        t = (now - self.started_at) % self.period_s if self.incidents else -1.0
        return any(i.what == what and (sensor_id is None or i.sensor_id == sensor_id)
                   and i.start <= t < i.end for i in self.incidents)

    def mode(self, now: float) -> str:
        """``home`` or ``away`` as the residents' schedule (and the demo's intruder) say."""
        if any(self.incident("intruder", None, now + shift) for shift in (2.0, 0.0, -5.0)):
            return "away"  # set 2 s before the intruder moves, so the mode is stored first
        return "home" if residents_home(now) else "away"

    def silent(self, sensor_id: str, now: float) -> bool:
        return self.incident("silent", sensor_id, now)

    # --- outdoor -------------------------------------------------------------------------------

    def outdoor(self, now: float) -> float:
        hour, _, yday = _local(now)
        seasonal = 10.0 - 8.0 * math.cos(2 * math.pi * (yday - 15) / 365)
        return seasonal + 5.0 * math.sin(2 * math.pi * (hour - 9) / 24)

    def reading(self, sensor_id: str, now: float) -> dict[str, Any]:
        """The next reading of ``sensor_id`` measured at ``now`` (a JSON-ready dict)."""
        state = self.states[sensor_id]
        state.seq += 1
        kind = state.config.kind
        body: dict[str, Any] = {"kind": kind, "message_id": f"{self.boot}-{state.seq}",
                                "sensor_id": sensor_id, "ts": round(now, 3)}
        body.update(getattr(self, f"_{kind}")(state, now))
        return body

    def _meteo(self, s: _SensorState, now: float) -> dict[str, float]:
        rng = s.rng
        s.noise = 0.999 * s.noise + rng.gauss(0, 0.02)
        temperature = self.outdoor(now) + s.noise
        if self.raining and rng.random() < 1 / 1200:
            self.raining = False
        elif not self.raining and rng.random() < 1 / 3600:
            self.raining = True
        self.pressure += 0.0005 * (1013.0 - self.pressure) + rng.gauss(0, 0.01)
        hour, _, _ = _local(now)
        humidity = 72 - 18 * math.sin(2 * math.pi * (hour - 9) / 24) + (15 if self.raining else 0)
        wind = abs(3.0 + 1.5 * math.sin(2 * math.pi * (hour - 14) / 24) + rng.gauss(0, 1.2))
        return {"temperature": round(temperature, 2),
                "humidity": round(min(100.0, max(5.0, humidity + rng.gauss(0, 1))), 1),
                "pressure": round(self.pressure, 2), "wind": round(min(60.0, wind), 2),
                "rain": round(rng.uniform(0.5, 8.0), 2) if self.raining else 0.0}

    def _heating(self, s: _SensorState, now: float) -> dict[str, float]:
        hour, _, _ = _local(now)
        room = _room_type(s.config.room)
        if not residents_home(now):
            setpoint = 18.0
        elif hour >= 22.5 or hour < 6.0:
            setpoint = 17.0
        else:
            setpoint = {"bedroom": 19.0, "bathroom": 22.0}.get(room, 21.0)
        valve = min(100.0, max(0.0, 60.0 * (setpoint - s.temperature) + 15.0))
        outdoor = self.outdoor(now)
        if self.incident("hot_room", s.config.sensor_id, now):
            valve = 100.0
            s.temperature += 0.5  # a radiator valve stuck open in a small room: a demo's minute
        else:  # heated up to 1.2 °C a minute at a fully open valve, cooling with an 80 min constant
            s.temperature += 0.02 * valve / 100 - 0.0002 * (s.temperature - outdoor)
            if s.temperature > setpoint + 3:
                s.temperature -= 0.3  # windows opened by someone who noticed
        s.temperature = min(45.0, max(-10.0, s.temperature))
        return {"temperature": round(s.temperature + s.rng.gauss(0, 0.03), 2),
                "setpoint": setpoint, "valve": round(valve, 1)}

    def _motion(self, s: _SensorState, now: float) -> dict[str, bool]:
        if self.incident("intruder", s.config.sensor_id, now):
            return {"motion": True}
        if self.mode(now) == "away":
            s.active = False
            return {"motion": False}
        hour, _, _ = _local(now)
        rate = 0.004
        for (low, high), r in MOTION_START.get(_room_type(s.config.room), []):
            if low <= hour < high:
                rate = r
        if s.active:
            s.active = s.rng.random() > 0.1
        else:
            s.active = s.rng.random() < rate
        return {"motion": s.active}

    def _electricity(self, s: _SensorState, now: float) -> dict[str, float]:
        rng = s.rng
        hour, weekday, _ = _local(now)
        name = s.config.sensor_id
        home = residents_home(now)
        if "kitchen" in name:
            power = 40 + (110 if (now // 900) % 3 == 0 else 0)  # a fridge cycling
            if now >= s.appliance_until and home and rng.random() < 0.002:
                s.appliance_until, s.appliance_w = now + 150, 2000.0  # a kettle
        elif "oven" in name:
            power = 2400.0 if home and 18.0 <= hour < 19.0 and (now // 40) % 5 < 3 else 0.0
        elif "washer" in name:
            start = 10.0 if weekday >= 5 else 19.0
            if start <= hour < start + 0.25:
                power = 2000.0                      # heating the water
            elif start <= hour < start + 1.25:
                power = 300.0                       # washing, spinning
            else:
                power = 1.0
        elif "heatpump" in name:
            demand = max(0.0, (18.0 - self.outdoor(now)) / 25.0)
            power = (300.0 + 2000.0 * demand) if (now // 600) % 4 else 20.0
        elif "ev" in name:
            power = 7000.0 if (hour >= 22.0 or hour < 2.0) and weekday in (0, 2, 4) else 0.0
        elif "lighting" in name or "lights" in name:
            dark = hour < 7.0 or hour >= 18.0
            power = (150.0 + 250.0 * (hour >= 18.0)) if dark and home and hour >= 5.5 else 5.0
        elif "office" in name:
            power = 130.0 if home and 9 <= hour < 17 else 6.0
        else:  # living-room or generic sockets
            power = (60.0 + 160.0 * (19 <= hour < 23)) if home else 15.0
            if now >= s.appliance_until and home and rng.random() < 0.0005:
                s.appliance_until, s.appliance_w = now + 600, 900.0  # a vacuum cleaner, an iron
        if now < s.appliance_until:
            power += s.appliance_w
        if self.incident("overload", name, now):
            power = (s.config.power_limit or 3000.0) * 1.15
        power = max(0.0, power * (1 + rng.gauss(0, 0.02)))
        s.energy += power / 3600.0
        return {"power": round(power, 1), "energy": round(s.energy, 2)}


# --- sending it over HTTPS ----------------------------------------------------------------------

class HttpsFleet:
    """Every sensor of a ``HouseModel`` POSTing one reading a second to ``url`` (the ingest edge).

    Runs on an asyncio loop (``run`` until ``stop``). ``connections`` kept-alive TLS connections
    carry the requests; a reading that got no 2xx is retried with the same body (backoff 0.1 s
    doubling to 2 s) until it is acknowledged or the fleet stops; a 4xx other than 408/429 is a bug
    in the reading and is counted, not retried. At most ``max_queued`` readings wait to be sent
    (the sensors' buffers); past that the newest are dropped and counted. With ``record_acked`` the
    acknowledged ``(sensor_id, message_id)`` pairs are kept (tests check each is stored).
    """

    def __init__(self, model: HouseModel, url: str, ssl_context: ssl.SSLContext | None, *,
                 connections: int = 8, max_queued: int = 100_000, record_acked: bool = False,
                 rate_hz: float = 1.0, set_mode: bool = True, record_latency: bool = False) -> None:
        self.model = model
        self.url = url.rstrip("/")
        self.ssl_context = ssl_context
        self.connections = connections
        self.max_queued = max_queued
        self.record_acked = record_acked
        self.rate_hz = rate_hz
        self.set_mode = set_mode
        self.sent = self.acked = self.refused = self.failed_attempts = self.dropped = 0
        self.acked_ids: list[tuple[str, str]] = []
        self.record_latency = record_latency
        self.latencies_ms: list[float] = []  # measured to acknowledged, with record_latency
        self.last_refusal = ""
        self.queue: deque[tuple[bytes, str, str, str, float]] = deque()
        self.in_flight = 0
        self.halted = asyncio.Event()    # no new readings
        self.stopping = asyncio.Event()  # no more deliveries either
        self.wake = asyncio.Event()
        self.mode_sent = ""

    @property
    def pending(self) -> int:
        return len(self.queue) + self.in_flight

    async def run(self) -> None:
        import aiohttp
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=self.ssl_context or False)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            workers = [asyncio.create_task(self._worker(session)) for _ in range(self.connections)]
            try:
                await self._produce(session)
                await asyncio.gather(*workers)  # drain: they end when the queue is empty
            finally:
                self.stopping.set()
                self.wake.set()
                await asyncio.gather(*workers, return_exceptions=True)

    def stop(self, *, drain: bool = False) -> None:
        """Stop producing (call on the fleet's loop). With ``drain``, what the sensors have queued
        is still delivered (retried as usual) before ``run`` returns, so every reading counted as
        sent gets its answer; without, queued and retrying readings are abandoned at once."""
        self.halted.set()
        if not drain:
            self.stopping.set()
        self.wake.set()

    async def _produce(self, session: Any) -> None:
        loop = asyncio.get_running_loop()
        sensors = list(self.model.states)
        period = 1.0 / self.rate_hz
        tick = loop.time()
        while not self.halted.is_set():
            now = time.time()
            if self.set_mode:
                await self._sync_mode(session, now)
            for index, sensor_id in enumerate(sensors):
                due = tick + period * index / max(1, len(sensors))
                delay = due - loop.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self.halted.wait(), delay)
                        return
                    except TimeoutError:
                        pass
                measured = time.time()
                if self.model.silent(sensor_id, measured):
                    continue
                body = self.model.reading(sensor_id, measured)
                if len(self.queue) >= self.max_queued:
                    self.dropped += 1
                    continue
                self.queue.append((json.dumps(body, separators=(",", ":")).encode(), "/readings",
                                   sensor_id, body["message_id"], measured))
                self.sent += 1
                self.wake.set()
            tick += period
            if tick < loop.time() - 5 * period:
                tick = loop.time()  # fell far behind (a stalled loop): do not burst to catch up

    async def _sync_mode(self, session: Any, now: float) -> None:
        mode = self.model.mode(now)
        if mode != self.mode_sent:
            body = json.dumps({"mode": mode}).encode()
            self.queue.appendleft((body, "/mode", "", "", now))
            self.wake.set()
            self.mode_sent = mode

    async def _worker(self, session: Any) -> None:
        while True:
            if not self.queue:
                if self.halted.is_set():
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            body, path, sensor_id, message_id, measured = self.queue.popleft()
            self.in_flight += 1
            try:
                await self._deliver(session, body, path, sensor_id, message_id, measured)
            finally:
                self.in_flight -= 1

    async def _deliver(self, session: Any, body: bytes, path: str, sensor_id: str,
                       message_id: str, measured: float) -> None:
        import aiohttp
        backoff = 0.1
        headers = {"Content-Type": "application/json"}
        while not self.stopping.is_set():
            try:
                async with session.post(self.url + path, data=body, headers=headers) as response:
                    text = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                status, text = 0, b""
            if 200 <= status < 300:
                if path == "/readings":
                    self.acked += 1
                    if self.record_acked:
                        self.acked_ids.append((sensor_id, message_id))
                    if self.record_latency:
                        self.latencies_ms.append((time.time() - measured) * 1000)
                return
            if 400 <= status < 500 and status not in (408, 429):
                self.refused += 1
                self.last_refusal = text[:200].decode(errors="replace")
                return
            self.failed_attempts += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(2.0, backoff * 2)


class HouseSimulator:
    """A ``HouseModel`` and its ``HttpsFleet`` on their own loop thread: ``start()``, ``stop()``.

    ``url`` is the ingest edge (``https://127.0.0.1:8443``); ``tls_dir`` the edge's self-signed
    certificate directory, which is the only certificate the fleet trusts.
    """

    def __init__(self, house: HouseConfig, url: str, tls_dir: str | None, *, demo: bool = False,
                 seed: int = 7, connections: int = 8, record_acked: bool = False,
                 set_mode: bool = True) -> None:
        self.model = HouseModel(house, seed=seed, demo=demo)
        context = client_context(tls_dir) if tls_dir else None
        self.fleet = HttpsFleet(self.model, url, context, connections=connections,
                                record_acked=record_acked, set_mode=set_mode)
        self.loop_thread = LoopThread(name="ptr-smart-home-sim")
        self._done = threading.Event()
        self._task: Any = None

    def start(self) -> HouseSimulator:
        loop = self.loop_thread.start()

        def begin() -> None:
            self._task = loop.create_task(self.fleet.run())
            self._task.add_done_callback(lambda _: self._done.set())
        loop.call_soon_threadsafe(begin)
        return self

    def set_url(self, url: str) -> None:
        self.fleet.url = url.rstrip("/")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sending (in-flight requests get ``timeout_s``), then the thread; idempotent."""
        if not self.loop_thread.running:
            return
        try:
            self.loop_thread.loop.call_soon_threadsafe(self.fleet.stop)
        except RuntimeError:
            pass
        self._done.wait(timeout_s)
        self.loop_thread.stop()

    def stats(self) -> SimulatorStats:
        fleet = self.fleet
        return SimulatorStats(sent=fleet.sent, acked=fleet.acked, refused=fleet.refused,
                              failed_attempts=fleet.failed_attempts, pending=fleet.pending,
                              url=fleet.url)


# --- in the tree ---------------------------------------------------------------------------------

class StartSimulation:
    """Internal: the edge's address is known; ask it where it listens."""


class SimulatorArgs(ActorArgs):
    edge: str
    house: HouseConfig
    tls_dir: str | None = None
    demo: bool = True
    seed: int = 7
    connections: int = Field(default=8, ge=1)


class HouseSimulatorActor(Actor):
    """The house simulator, supervised: finds the ingest edge by its registered name (``edge`` in
    its args), asks where it listens and starts a ``HouseSimulator`` against it; follows the edge to
    its new port when it restarts. Stopping the actor stops the simulated sensors.

    Args: ``edge``, ``house``, ``tls_dir``, ``demo`` (incidents, default True), ``seed``,
    ``connections``.
    """

    Args = SimulatorArgs
    simulator: HouseSimulator | None = None

    def on_start(self) -> None:
        self.settings: SimulatorArgs = self.typed_args()
        self.edge = self.peer(self.settings.edge, on_down=lambda _address: self.locate())
        self.locate()

    def locate(self) -> None:
        self.edge.request(GetEdgeInfo(), self.edge_found, timeout_s=5.0,
                          on_unavailable=lambda: self.start_timer(0.1, StartSimulation()))

    def receiveMsg_StartSimulation(self, msg: StartSimulation, sender: Any) -> None:
        if sender == self.myAddress:
            self.locate()

    def edge_found(self, info: Any) -> None:
        assert isinstance(info, EdgeInfo), info
        if self.simulator is not None:
            self.simulator.set_url(info.url)
            return
        args = self.settings
        self.simulator = HouseSimulator(args.house, info.url, args.tls_dir, demo=args.demo,
                                        seed=args.seed, connections=args.connections).start()

    def on_stop(self, reason: ExitReason) -> None:
        if self.simulator is not None:
            self.simulator.stop()

    def receiveMsg_GetSimulatorStats(self, msg: GetSimulatorStats, sender: Any) -> SimulatorStats:
        if self.simulator is None:
            return SimulatorStats(sent=0, acked=0, refused=0, failed_attempts=0, pending=0)
        return self.simulator.stats()
