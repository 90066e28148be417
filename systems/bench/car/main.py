"""``ptr bench car``: the car system under its sensors, beside a bare asyncio process, in one run.

All on ``multiprocTCPBase`` on this machine. ``signals`` sensor signals (the car's 13 plus
synthetic ``Vehicle.Diagnostics.ChannelN``), two redundant sensors each at 100 Hz, sent by a load
process to BOTH holders, plus one probe signal the bench sends itself (step 2); each holder
applies ``(signals + 1) x 2 x 100`` datagrams a second: the default 50 signals offer 10,200/s (the
issue's floor is 10,000/s), ``--set signals=150`` 30,200/s (its mark). Steps:

1. **Window** (``seconds``): each holder's counters reset at its start; ``updates_per_s`` is what
   holder-a applied to its tree from UDP (accepted samples, owner and redundant alike) per second
   (``updates_per_s_b`` holder-b's); ``stored_per_s`` the new history rows the store committed
   per second. A subscriber process subscribed to both holders for the car's own 16 signals (a
   dashboard; the synthetic channels are load) at rate 0 gives ``sensor_to_subscriber_p50_ms``/``p99_ms`` (sensor's wall clock at send -> subscriber's at
   receipt, first copy of each sample, one machine).
2. **Failover**, during the same window: the bench itself sends the two sensors of one probe
   signal and ``failovers`` times silences the strong one at the moment its next datagram is
   due; ``failover_ms`` (p99, and p50) is from that moment to the subscriber seeing the weak
   sensor as the value's source. The deadline is 3 periods from the last datagram received, so
   the floor of this figure is 2 periods (20 ms) plus the detection (one sweep, 2 ms).
3. **Kill**: a subscriber runs ``kill_window_s``; after a third of it holder-a is SIGKILLed;
   ``subscriber_gap_ms`` is the longest time any signal went without a new sample at the
   subscriber in that window (``normal_gap_ms``: the same figure in the window of step 1).
4. **Bare** (``bare``): the same load (to one port) against ``systems.bench.car.bare``, one
   asyncio process with the same decoder, tree and subscriptions; the same subscriber gives
   ``bare_updates_per_s`` and ``bare_sensor_to_subscriber_p99_ms``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from actors.car import CarClient, SensorFleet, default_sensors, load_vspec
from actors.car.simulator import SLOTS
from actors.car.vss import synthetic_specs
from protocols.car import CarStats, GetCarStats
from protocols.storage import BatcherStats, GetBatcherStats
from systems.bench._helper import BenchHelper
from systems.car import HOLDERS, STORE, SYSTEM, CarSettings
from systems.runtime import ActorRuntime

CAR_SENSOR_SIGNALS = sum(1 for s in load_vspec() if s.type == "sensor")
TARGETS = {"updates_per_s": 10_000, "sensor_to_subscriber_p99_ms": 10.0, "failover_ms": 30.0,
           "mark_updates_per_s": 30_000, "mark_p99_ms": 5.0}
HELPERS = "systems.bench.car.helpers"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(rt: ActorRuntime, name: str, reset: bool = False) -> CarStats:
    answer = rt.ask(name, GetCarStats(reset=reset), 10)
    assert isinstance(answer, CarStats), answer
    return answer


def _stored(rt: ActorRuntime) -> int:
    answer = rt.ask(STORE, GetBatcherStats(), 10)
    assert isinstance(answer, BatcherStats), answer
    return answer.rows_new


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else -1.0


class FailoverProbe:
    """The probe signal's two sensors, sent from this process, and a subscriber of its value."""

    def __init__(self, path: str, extra: int, ports: list[tuple[str, int]]) -> None:
        specs = load_vspec() + synthetic_specs(extra)
        sensors = [s for s in default_sensors(specs) if s.path == path]
        self.strong, self.weak = sorted(sensors, key=lambda s: -s.strength)
        self.fleet = SensorFleet(specs, sensors, ports)
        self.client = CarClient(ports)
        self.path = path
        self.silence_at: float | None = None  # wall clock at which the strong sensor goes quiet
        self.results_ms: list[float] = []
        self.missed = 0

    def run(self, count: int, stop: threading.Event) -> None:
        fleet, strong = self.fleet, self.strong.sensor_id
        original = fleet.send_slot

        strong_slot = next(i for i, s in enumerate(fleet.sensors)
                           if s.sensor_id == strong) % SLOTS

        def send_slot(slot: int, t: float) -> None:  # the moment a due datagram is held back
            if slot == strong_slot and self.silence_at is None and strong in fleet.silenced:
                late_s = time.monotonic() - (fleet.began + t)  # the sender's own lateness
                self.silence_at = time.time() - late_s
            original(slot, t)

        fleet.send_slot = send_slot  # type: ignore[method-assign]
        fleet.start()
        self.client.subscribe([self.path], rate_hz=0)
        try:
            for _ in range(count):
                if stop.is_set():
                    break
                if not self._wait_source(self.strong.sensor_id, 2.0):
                    self.missed += 1
                    continue
                time.sleep(0.1 + (len(self.results_ms) % 10) * 0.0013)  # vary the phase
                self.silence_at = None
                fleet.silence(strong)
                seen = self._wait_source(self.weak.sensor_id, 2.0)
                if seen and self.silence_at is not None:
                    self.results_ms.append((seen - self.silence_at) * 1000)
                else:
                    self.missed += 1
                fleet.silence(strong, False)
        finally:
            fleet.stop()
            self.client.close()

    def _wait_source(self, sensor_id: int, timeout_s: float) -> float | None:
        """Wall clock at which the subscriber saw ``sensor_id`` own the value, None on time-out."""
        label = f"sensor-{sensor_id}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, _member, value in self.client.updates(0.05):
                if value.source == label and value.state == "available":
                    return at
        return None


def measure_ptr(data_dir: Path, signals: int, seconds: float, failovers: int,
                kill_window_s: float) -> dict[str, Any]:
    extra = _extra(signals)
    probe_path = f"Vehicle.Diagnostics.Channel{extra}"
    settings = SYSTEM.settings(overrides={
        "data_dir": str(data_dir), "udp_port_a": _free_udp_port(),
        "udp_port_b": _free_udp_port(), "extra_signals": extra})
    assert isinstance(settings, CarSettings)
    out: dict[str, Any] = {}
    with ActorRuntime(SYSTEM.tree(settings), base="multiproc", name="car") as rt:
        ports = [(settings.udp_host, _stats(rt, h).udp_port) for h in HOLDERS]
        targets = [f"{h}:{p}" for h, p in ports]
        with BenchHelper(HELPERS, "load", extra, probe_path, *targets) as load:
            out["sensors"] = load.line(30)["sensors"] + 2
            rt.wait_for(lambda: _stats(rt, HOLDERS[0]).applied > signals * 100,
                        timeout_s=30, what="the holders applying")
            time.sleep(1.0)  # warm-up: let the load settle before the window
            probe = FailoverProbe(probe_path, extra, ports)
            stop = threading.Event()
            prober = threading.Thread(target=probe.run, args=(failovers, stop), daemon=True)
            for name in HOLDERS:
                _stats(rt, name, reset=True)
            first = _stats(rt, HOLDERS[0])
            a0, r0, b0 = first.applied, first.received, _stats(rt, HOLDERS[1]).applied
            stored0, began = _stored(rt), time.monotonic()
            prober.start()
            with BenchHelper(HELPERS, "subscribe", seconds, 0.5, *targets) as sub:
                latency = sub.line(seconds + 30)
            a, b = _stats(rt, HOLDERS[0]), _stats(rt, HOLDERS[1])
            stored, elapsed = _stored(rt), time.monotonic() - began
            prober.join(max(1.0, failovers * 3.0))
            stop.set()
            prober.join(10)
            out.update({
                "updates_per_s": round((a.applied - a0) / elapsed),
                "updates_per_s_b": round((b.applied - b0) / elapsed),
                "received_per_s": round((a.received - r0) / elapsed),
                "dropped": a.dropped_undecodable + a.dropped_unknown_sensor
                + a.dropped_out_of_range + a.dropped_stale_seq,
                "sensor_to_subscriber_p50_ms": round(latency["p50_ms"], 3),
                "sensor_to_subscriber_p99_ms": round(latency["p99_ms"], 3),
                "subscriber_samples": latency["samples"],
                "normal_gap_ms": round(max((g[1] for g in latency["gaps"]), default=-1), 1),
                "failover_ms": _pct(probe.results_ms, 0.99),
                "failover_p50_ms": _pct(probe.results_ms, 0.5),
                "failovers_measured": len(probe.results_ms), "failovers_missed": probe.missed,
                "stored_per_s": round((stored - stored0) / elapsed),
                "history_shed": a.history_shed + b.history_shed,
                "alerts": a.alerts,
            })
            victim = _stats(rt, HOLDERS[0])
            with BenchHelper(HELPERS, "subscribe", kill_window_s, 0.5, *targets) as sub:
                time.sleep(kill_window_s / 3)  # the subscriber's steady state before the kill
                killed_at = time.time()
                os.kill(victim.pid, signal.SIGKILL)
                gaps = sub.line(kill_window_s + 30)["gaps"]
            back = rt.wait_for(lambda: (s := _stats(rt, HOLDERS[0])).incarnation > 1 and s,
                               timeout_s=30, what="holder-a restarted")
            out.update({
                "subscriber_gap_ms": round(max((g[1] for g in gaps), default=-1), 1),
                "gap_signals": len(gaps),
                "killed_member_synced_values": back.synced_from_peer,
                "killed_at_s_into_window": round(kill_window_s / 3, 2),
                "kill_time_unix": round(killed_at, 3),
            })
    return out


def _extra(signals: int) -> int:
    """Synthetic channels: those the load needs beyond the car's own, plus the probe's."""
    return max(0, signals - CAR_SENSOR_SIGNALS) + 1


def _bare_stats(port: int) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        for _ in range(5):  # the bare server is busy: a request may be lost in its full buffer
            sock.sendto(b"stats", ("127.0.0.1", port))
            try:
                return dict(json.loads(sock.recvfrom(65535)[0]))
            except TimeoutError:
                continue
    raise TimeoutError("the bare server does not answer")


def measure_bare(signals: int, seconds: float) -> dict[str, Any]:
    extra = _extra(signals)
    with BenchHelper("systems.bench.car.bare", extra) as bare:
        port = bare.line(30)["port"]
        target = f"127.0.0.1:{port}"
        with BenchHelper(HELPERS, "load", extra, "-", target) as load:
            load.line(30)
            time.sleep(1.0)  # warm-up, as for ptr
            first = _bare_stats(port)
            with BenchHelper(HELPERS, "subscribe", seconds, 0.5, target) as sub:
                latency = sub.line(seconds + 30)
            last = _bare_stats(port)
    return {"bare_updates_per_s": round((last["applied"] - first["applied"])
                                        / (last["at"] - first["at"])),
            "bare_sensor_to_subscriber_p50_ms": round(latency["p50_ms"], 3),
            "bare_sensor_to_subscriber_p99_ms": round(latency["p99_ms"], 3)}


def run(signals: int = 50, seconds: float = 10.0, failovers: int = 20,
        kill_window_s: float = 3.0, bare: bool = True) -> dict[str, Any]:
    """``signals`` sensor signals (2 sensors each, 100 Hz); see the module docstring."""
    if signals < 2:
        raise ValueError("signals must be at least 2")
    result: dict[str, Any] = {
        "base": "multiprocTCPBase", "signals": signals, "sensors_per_signal": 2, "rate_hz": 100,
        "offered_per_holder_per_s": (max(signals, CAR_SENSOR_SIGNALS) + 1) * 2 * 100,
        "seconds": seconds, "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="ptr-bench-car-") as tmp:
        result.update(measure_ptr(Path(tmp), signals, seconds, failovers, kill_window_s))
    if bare:
        result.update(measure_bare(signals, seconds))
        if result["bare_updates_per_s"]:
            result["updates_ratio_vs_bare"] = round(
                result["updates_per_s"] / result["bare_updates_per_s"], 3)
        if result["bare_sensor_to_subscriber_p99_ms"] > 0:
            result["p99_ratio_vs_bare"] = round(result["sensor_to_subscriber_p99_ms"]
                                                / result["bare_sensor_to_subscriber_p99_ms"], 3)
    result["floors_met"] = (result["updates_per_s"] >= TARGETS["updates_per_s"]
                            and result["sensor_to_subscriber_p99_ms"]
                            <= TARGETS["sensor_to_subscriber_p99_ms"]
                            and 0 <= result["failover_ms"] <= TARGETS["failover_ms"])
    return result
