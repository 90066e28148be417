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
    "grid": ("grid: acked readings/s through 2 HTTPS gateways with a kill -9, ack p99, daily job "
             "rows/s, lost/duplicated, vs bare aiohttp + JetStream", _grid),
}
