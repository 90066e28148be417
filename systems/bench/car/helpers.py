"""The load and the measuring subscriber of ``ptr bench car``, each a process of its own.

``python -m systems.bench.car.helpers load EXTRA_SIGNALS EXCLUDE_PATH HOST:PORT...``: every sensor
of the car plus ``EXTRA_SIGNALS`` synthetic channels (two redundant sensors each) at 100 Hz to
every target, except the sensors of ``EXCLUDE_PATH`` (the failover probe's, sent by the bench
itself). Prints ``{"sensors": N}`` and sends until killed.

``python -m systems.bench.car.helpers subscribe SECONDS SKIP_S HOST:PORT...``: subscribes to every
target for the car's own signals (``DASHBOARD_PATHS``: its 13 sensors and 3 actuators, not the
synthetic channels, as a dashboard would) at rate 0 and merges the members' answers as ``CarClient`` does (the
first copy of a sample counts), without building a model per row. After ``SECONDS`` prints the
sensor-to-subscriber latency of every merged sample received after ``SKIP_S`` (sensor wall clock
-> receipt wall clock, one machine) and, per signal, the longest gap between two samples with when
it began: ``{"samples", "p50_ms", "p99_ms", "max_ms", "gaps": [[path, gap_ms, began], ...]}``.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import msgpack

from actors.car.simulator import SensorFleet
from actors.car.vss import default_sensors, load_vspec, synthetic_specs
from protocols.car import encode_client_op

DASHBOARD_PATHS = ["Vehicle.Speed", "Vehicle.Powertrain", "Vehicle.Chassis", "Vehicle.Cabin",
                   "Vehicle.ADAS"]
RENEW_S = 0.5  # subscribe again this often: a restarted member then knows of us within it


def _targets(args: list[str]) -> list[tuple[str, int]]:
    return [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in args]


def load(extra: int, exclude: str, targets: list[tuple[str, int]]) -> None:
    specs = load_vspec() + synthetic_specs(extra)
    sensors = [s for s in default_sensors(specs) if s.path != exclude]
    fleet = SensorFleet(specs, sensors, targets)
    print(json.dumps({"sensors": len(sensors)}), flush=True)
    fleet.run()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def subscribe(seconds: float, skip_s: float, targets: list[tuple[str, int]]) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    request = encode_client_op("sub", paths=DASHBOARD_PATHS, rate_hz=0, tag=1)
    for target in targets:
        sock.sendto(request, target)
    latest: dict[tuple[str, str], tuple[float, int]] = {}
    last_at: dict[str, float] = {}
    gaps: dict[str, tuple[float, float]] = {}
    latencies: list[float] = []
    began = time.time()
    measure_from, end = began + skip_s, began + seconds
    renew_at = began + RENEW_S
    sock.settimeout(0.05)
    unpack = msgpack.unpackb
    while (now := time.time()) < end:
        if now >= renew_at:  # a restarted member learns of us again (and the lease is renewed)
            for target in targets:
                sock.sendto(request, target)
            renew_at = now + RENEW_S
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            continue
        at = time.time()
        reply = unpack(data)
        if reply.get("op") != "val":
            continue
        for path, _value, source, ts, _age, state, seq in reply["values"]:
            key = (ts, seq)
            if state != "available" or latest.get((path, source), (0.0, 0)) >= key:
                continue
            latest[(path, source)] = key
            if at >= measure_from:
                latencies.append((at - ts) * 1000)
                previous = last_at.get(path)
                if previous is not None and at - previous > gaps.get(path, (0.0, 0.0))[0]:
                    gaps[path] = (at - previous, previous)
            last_at[path] = at
    sock.close()
    return {"samples": len(latencies), "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies, default=float("nan")),
            "gaps": [[path, gap * 1000, start] for path, (gap, start) in gaps.items()]}


def main(argv: list[str]) -> None:
    role = argv[0]
    if role == "load":
        load(int(argv[1]), argv[2], _targets(argv[3:]))
    elif role == "subscribe":
        print(json.dumps(subscribe(float(argv[1]), float(argv[2]), _targets(argv[3:]))),
              flush=True)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
