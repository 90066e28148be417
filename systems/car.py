"""System 2, car telemetry: a live VSS signal tree fed at 100 Hz by redundant UDP sensors, held by
an active pair, its history batched into a database.

    /car (one_for_one)
    ├── store        Batcher: history rows into SQLite (or PostgreSQL by URL), idempotent
    ├── holder-a     SignalHolder, UDP udp_port_a: the signal tree, subscriptions (a process)
    └── holder-b     SignalHolder, UDP udp_port_b: the same, fed by the same datagrams

Sensors send every datagram to both holders; subscribers (``actors.car.CarClient``) subscribe to
both and keep the newest sample. A killed holder restarts with the other's values.
``ptr run car --simulate`` adds the car's sensors (``actors.car.SimulatedCar``) in a process.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actors.car import HISTORY_TABLE, SignalHolder
from actors.car.simulator import SimulatedCar
from actors.storage.batcher import Batcher
from protocols.car import CarStats, GetCarStats, GetSignals, SignalValues
from protocols.errors import PtrError
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec

__all__ = ["HOLDERS", "STORE", "SYSTEM", "CarSettings", "build_tree", "holder_ports",
           "simulator", "status"]

STORE = "car-store"
DASHBOARD = {"Vehicle.Speed": "speed km/h", "Vehicle.Powertrain.CombustionEngine.Speed": "rpm",
             "Vehicle.Chassis.Brake.PedalPosition": "brake %"}
HOLDERS = ("car-holder-a", "car-holder-b")


class CarSettings(SystemSettings):
    """Every knob of the car system; ``--set KEY=VALUE`` or a TOML ``[car]`` table sets them."""

    udp_host: str = "127.0.0.1"
    udp_port_a: int = Field(default=7801, ge=0, le=65535)
    udp_port_b: int = Field(default=7802, ge=0, le=65535)
    vspec: str | None = None                  # a vspec file; default: the one shipped
    extra_signals: int = Field(default=0, ge=0)  # synthetic channels (benchmarks)
    redundancy: int = Field(default=2, ge=1, le=8)
    deadline_periods: float = Field(default=3.0, gt=0)
    sweep_s: float = Field(default=0.002, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    history: bool = True
    history_flush_s: float = Field(default=0.1, gt=0)
    history_window: int = Field(default=2, ge=1)
    history_buffer_rows: int = Field(default=50_000, ge=1)
    store_max_rows: int = Field(default=5_000, ge=1)


def build_tree(s: CarSettings) -> SupervisorSpec:
    children = []
    if s.history:
        children.append(ChildSpec("store", Batcher, name=STORE, args={
            "storage_url": s.resolved_storage_url("car"), "table": HISTORY_TABLE,
            "max_rows": s.store_max_rows, "max_age_s": s.history_flush_s / 2}))
    for member, name, other, port in (("a", HOLDERS[0], HOLDERS[1], s.udp_port_a),
                                      ("b", HOLDERS[1], HOLDERS[0], s.udp_port_b)):
        children.append(ChildSpec(f"holder-{member}", SignalHolder, name=name, args={
            "member": member, "peer": other, "store": STORE if s.history else None,
            "udp_host": s.udp_host, "udp_port": port, "vspec": s.vspec,
            "extra_signals": s.extra_signals, "redundancy": s.redundancy,
            "deadline_periods": s.deadline_periods, "sweep_s": s.sweep_s, "lease_s": s.lease_s,
            "history_flush_s": s.history_flush_s, "history_window": s.history_window,
            "history_buffer_rows": s.history_buffer_rows}))
    return SupervisorSpec(Strategy.ONE_FOR_ONE, children)


def holder_stats(runtime: Any, timeout_s: float = 2.0, reset: bool = False) -> list[CarStats]:
    out = []
    for name in HOLDERS:
        stats = runtime.ask(name, GetCarStats(reset=reset), timeout_s)
        assert isinstance(stats, CarStats), stats
        out.append(stats)
    return out


def holder_ports(runtime: Any, s: CarSettings) -> list[tuple[str, int]]:
    """Where the sensors and subscribers reach the pair (the bound ports when 0 was asked)."""
    return [(s.udp_host, stats.udp_port) for stats in holder_stats(runtime, 10)]


def status(runtime: Any, s: CarSettings) -> str:
    parts = []
    for name in HOLDERS:
        try:
            r = runtime.ask(name, GetCarStats(reset=True), 2)
            assert isinstance(r, CarStats)
        except PtrError as exc:
            parts.append(f"{name} unavailable ({type(exc).__name__})")
            continue
        per_s = r.window_s or 1.0
        dropped = (r.dropped_undecodable + r.dropped_unknown_sensor + r.dropped_out_of_range
                   + r.dropped_stale_seq)
        parts.append(f"{r.member}: {r.applied:,} applied ({r.applied_in_window / per_s:,.0f}/s), "
                     f"dropped {dropped}, failovers {r.failovers}, alerts {len(r.active_alerts)} "
                     f"active, {r.subscribers} subscribers, history stored {r.history_stored:,} "
                     f"shed {r.history_shed:,}")
    try:
        live = runtime.ask(HOLDERS[0], GetSignals(paths=list(DASHBOARD)), 2)
        assert isinstance(live, SignalValues)
        parts.append(", ".join(
            f"{DASHBOARD[v.path]} {v.value:.0f} ({v.source}, {v.age_ms:.0f} ms)"
            if isinstance(v.value, (int, float)) else f"{DASHBOARD[v.path]} {v.state}"
            for v in live.values))
    except PtrError:
        pass
    return "; ".join(parts)


def edges(s: CarSettings) -> list[str]:
    return [f"holder-{m} UDP {s.udp_host}:{p or '(a free port)'}"
            for m, p in (("a", s.udp_port_a), ("b", s.udp_port_b))]


def listen_ports(s: CarSettings) -> dict[str, int]:
    ports = {"udp_port_a": s.udp_port_a, "udp_port_b": s.udp_port_b}
    return {setting: port for setting, port in ports.items() if port}


def simulator(runtime: Any, s: CarSettings) -> SimulatedCar:
    """``--simulate``: every sensor of the deployment at 100 Hz to both holders, from a process
    of its own (the car's own catalogue and two sensors a signal, plus ``extra_signals``)."""
    return SimulatedCar(holder_ports(runtime, s), s.extra_signals)


SYSTEM = SystemSpec(name="car", summary="car telemetry: a VSS signal tree at 100 Hz from redundant "
                    "UDP sensors, an active pair of holders, batched history",
                    build_tree=build_tree, settings_model=CarSettings, status=status,
                    edges=edges, simulator=simulator, listen_ports=listen_ports)
