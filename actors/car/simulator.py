"""Simulated sensors: every sensor of the deployment sends a sample every period (100 Hz) to every
member of the pair, as msgpack ``[sensor_id, seq, ts, value]`` datagrams.

``CarModel`` gives realistic values from a drive cycle (a loop of accelerate, cruise, brake, stop):
vehicle speed follows the cycle, engine speed follows speed through the gear ratios, brake
pressure and pedal rise on braking events, pads wear a little with each stop, the cabin air
drifts toward the driver's setting, the front camera's distance to the car ahead breathes with
the speed. Redundant sensors of a signal read the same truth with a little noise of their own
(well inside the signal's tolerance), so a plausibility alert means a real fault.

``SensorFleet`` sends: a thread (``start``/``stop``) or the caller's loop (``run``).
``SimulatedCar`` runs a fleet in a process of its own (``python -m actors.car.simulator
EXTRA_SIGNALS HOST:PORT...``), so that nothing else in the caller's process delays the sensors:
``ptr run car --simulate`` uses it. Its sensors
are spread over the period (slot = sensor index mod 10, one slot a millisecond) instead of all
at once. ``silence`` stops one sensor (a failover test or benchmark), ``corrupt`` offsets one (a
plausibility fault).
"""

from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from actors.car.vss import SensorSpec, SignalSpec
from protocols.car import encode_sample

__all__ = ["CarModel", "SensorFleet", "SimulatedCar"]

CYCLE_S = 60.0
SLOTS = 10


class CarModel:
    """The truth the sensors measure, as a function of time since the drive began."""

    def __init__(self, specs: Sequence[SignalSpec]) -> None:
        self.specs = {s.path: s for s in specs}
        self.pad_wear = 12.0
        self.cabin = 28.0
        self.target = 21.0

    def speed(self, t: float) -> float:
        """km/h: 0-15 s accelerate to 110, cruise to 40 s, brake to 0 by 50 s, stand to 60 s."""
        c = t % CYCLE_S
        if c < 15:
            return 110 * math.sin(c / 15 * math.pi / 2)
        if c < 40:
            return 110 + 5 * math.sin((c - 15) / 4)
        if c < 50:
            return 110 * (50 - c) / 10
        return 0.0

    def braking(self, t: float) -> float:
        """0..1, how hard the driver brakes: 0.6 from 40 s to 50 s, then 0.1 to hold the car
        until 60 s, each change a half-second ramp (a brake line builds pressure, it does not
        jump: two redundant sensors sampling a millisecond apart then agree)."""
        c = t % CYCLE_S
        if c < 40:
            return 0.0
        if c < 50:
            return 0.6 * min(1.0, (c - 40) / 0.5)
        return 0.6 - 0.5 * min(1.0, (c - 50) / 0.5) if c < 59.5 else 0.1 * (60 - c) / 0.5

    def values(self, t: float) -> dict[str, float | int | bool]:
        speed = self.speed(t)
        rpm = 800 + 2500 * (1 - math.exp(-speed / 40)) + 10 * speed  # a CVT: no gear steps
        brake = self.braking(t)
        self.pad_wear = min(100.0, self.pad_wear + brake * 1e-5)
        self.cabin += (self.target - self.cabin) * 0.0005
        distance = max(2.0, min(250.0, 20 + speed * 0.6 + 10 * math.sin(t / 7)))
        out: dict[str, float | int | bool] = {
            "Vehicle.Speed": speed,
            "Vehicle.Powertrain.CombustionEngine.Speed": int(rpm),
            "Vehicle.Powertrain.CombustionEngine.ECT": int(min(95, 20 + t * 0.5)),
            "Vehicle.Powertrain.CombustionEngine.EngineOilPressure": 150 + rpm * 0.05,
            "Vehicle.Chassis.Brake.PedalPosition": int(brake * 100),
            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.FluidPressure": brake * 12000,
            "Vehicle.Chassis.Axle.Row1.Wheel.Right.Brake.FluidPressure": brake * 12000,
            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear": int(self.pad_wear),
            "Vehicle.Chassis.Axle.Row1.Wheel.Right.Brake.PadWear": int(self.pad_wear),
            "Vehicle.Cabin.HVAC.AmbientAirTemperature": self.cabin,
            "Vehicle.Cabin.Infotainment.Media.Played.PlaybackRate": 1.0,
            "Vehicle.ADAS.ObstacleDetection.Front.Distance": distance,
            "Vehicle.ADAS.ObstacleDetection.Front.IsWarning": distance < speed * 0.3,
        }
        return out

    def read(self, truth: dict[str, Any], path: str, noise: random.Random) -> Any:
        """A sensor's reading of ``path``: the truth plus noise within a tenth of the tolerance."""
        spec = self.specs[path]
        value = truth.get(path)
        if value is None:  # a synthetic channel
            return 500 + 400 * math.sin(time.monotonic() / 3 + hash(path) % 7)
        if spec.datatype == "boolean" or spec.tolerance is None or type(value) is not float:
            return value
        low = spec.min if spec.min is not None else -math.inf
        high = spec.max if spec.max is not None else math.inf
        return min(high, max(low, value + noise.uniform(-0.1, 0.1) * spec.tolerance))


class SensorFleet:
    """Sends every sensor's samples to every address in ``targets``; see the module docstring."""

    def __init__(self, specs: Sequence[SignalSpec], sensors: Sequence[SensorSpec],
                 targets: Sequence[tuple[str, int]], *, seed: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = CarModel(specs)
        self.sensors = list(sensors)
        self.targets = [tuple(t) for t in targets]
        self.noise = random.Random(seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self.clock = clock
        self.seq = dict.fromkeys((s.sensor_id for s in self.sensors), 0)
        self.silenced: set[int] = set()
        self.offsets: dict[int, float] = {}
        self.sent = self.send_failed = 0
        self.period_s = 0.01
        self.began = 0.0  # when ``run`` began, on ``clock``: slot times are counted from it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_sent: Callable[[int, float], None] | None = None

    def silence(self, sensor_id: int, silent: bool = True) -> None:
        (self.silenced.add if silent else self.silenced.discard)(sensor_id)

    def corrupt(self, sensor_id: int, offset: float) -> None:
        self.offsets[sensor_id] = offset

    def send_slot(self, slot: int, t: float) -> None:
        """Send one sample from each sensor of ``slot`` (sensor index mod ``SLOTS``)."""
        truth = self.model.values(t)
        now = time.time()
        sendto = self.sock.sendto
        for index in range(slot, len(self.sensors), SLOTS):
            sensor = self.sensors[index]
            sid = sensor.sensor_id
            if sid in self.silenced:
                continue
            self.seq[sid] += 1
            value = self.model.read(truth, sensor.path, self.noise)
            if sid in self.offsets and type(value) is not bool:
                value = value + self.offsets[sid]
            data = encode_sample(sid, self.seq[sid], now, value)
            for target in self.targets:
                try:
                    sendto(data, target)
                    self.sent += 1
                except OSError:
                    self.send_failed += 1

    def run(self, seconds: float | None = None) -> None:
        """Send at 100 Hz per sensor until ``stop`` (or for ``seconds``)."""
        began = self.began = self.clock()
        slot_s = self.period_s / SLOTS
        tick = 0
        while not self._stop.is_set():
            due = began + tick * slot_s
            now = self.clock()
            if seconds is not None and now - began >= seconds:
                return
            if due > now:
                time.sleep(due - now)  # pacing the sends (not synchronisation)
                continue
            if now - due > 1.0:  # far behind (suspended): skip ahead instead of bursting
                tick = int((now - began) / slot_s)
                continue
            self.send_slot(tick % SLOTS, due - began)
            tick += 1

    def start(self) -> SensorFleet:
        self._thread = threading.Thread(target=self.run, name="car-sensors", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()


class SimulatedCar:
    """Every sensor of the deployment (plus ``extra_signals`` synthetic channels) at 100 Hz to
    ``targets``, in a child process; ``stop`` ends it."""

    def __init__(self, targets: Sequence[tuple[str, int]], extra_signals: int = 0) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "actors.car.simulator", str(extra_signals),
             *(f"{host}:{port}" for host, port in targets)], cwd=root, env=env)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def main(argv: list[str]) -> None:
    from actors.car.vss import default_sensors, load_vspec, synthetic_specs
    specs = load_vspec() + synthetic_specs(int(argv[0]))
    targets = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in argv[1:]]
    fleet = SensorFleet(specs, default_sensors(specs), targets)
    parent = os.getppid()

    def orphaned() -> None:  # the ``ptr run`` that started us died without stopping us
        while not fleet._stop.wait(0.5):
            if os.getppid() != parent:
                fleet._stop.set()

    threading.Thread(target=orphaned, daemon=True).start()
    try:
        fleet.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main(sys.argv[1:])
