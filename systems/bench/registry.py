"""The benchmarks ``ptr bench`` knows, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _runtime(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.runtime import run
    return run(**kwargs)


def _light(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.light import run
    return run(**kwargs)


def _edges(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.edges import run
    return run(**kwargs)


def _game(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.game import run
    return run(**kwargs)


def _smart_home(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.smart_home import run
    return run(**kwargs)


def _car(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.car import run
    return run(**kwargs)


def _credit(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.credit import run
    return run(**kwargs)


def _inference(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.inference import run
    return run(**kwargs)


def _grid(**kwargs: Any) -> dict[str, Any]:
    from systems.bench.grid import run
    return run(**kwargs)


BENCHMARKS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "runtime": ("ptr actors vs plain Thespian messages/s, and restart latency", _runtime),
    "light": ("light actors: memory, spawn, local and cross-host messages, restart", _light),
    "game": ("game servers under 1000 UDP bots: inputs/s, tick p99, late ticks, vs naive", _game),
    "edges": ("HTTP edge + Batcher records/s, UDP edge datagrams/s, Batcher rows/s vs bare Python",
              _edges),
    "smart-home": ("smart home: readings/s through HTTPS into SQLite, ingest-to-db p99, 24 h "
                   "stats query, each vs a bare-Python monolith", _smart_home),
    "car": ("car telemetry: UDP sensor updates/s into the signal tree, sensor-to-subscriber p99, "
            "failover, gap when a holder is killed, stored/s, vs a bare asyncio process", _car),
    "credit": ("credit offers: search p50/p99 over 1M offers vs the same SQL behind bare aiohttp, "
               "quota violations over 30 simulated days, fresh ratio", _credit),
    "inference": ("ML prediction service: images/s and p95 batched vs batch 1 on the same "
                  "workers, jobs lost / results duplicated under kill -9s, upload MB/s vs a bare "
                  "file write", _inference),
    "grid": ("grid: acked readings/s through 2 HTTPS gateways with a kill -9, ack p99, daily job "
             "rows/s, lost/duplicated, vs bare aiohttp + JetStream", _grid),
}
