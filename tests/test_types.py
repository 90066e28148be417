"""The type checker runs as part of the suite: mypy --strict over the modules listed here (the
framework's core and the protocols; the list grows as modules are brought under it)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent

STRICT = [
    "protocols/codec.py", "protocols/message.py", "protocols/light.py", "protocols/ping.py",
    "protocols/bench.py", "protocols/game.py",
    "actors/_thespian.py", "actors/base.py", "actors/behaviour.py", "actors/peers.py",
    "actors/edges/mqtt.py", "actors/edges/routes.py", "actors/edges/limits.py",
    "actors/os_process.py", "actors/timers.py", "actors/system.py", "actors/clock.py",
    "systems/cli.py", "systems/runfile.py", "systems/processes.py", "systems/spec.py",
    "systems/catalog.py", "systems/runtime.py", "systems/bench/runtime.py",
    "systems/bench/runtime_plain.py",
    "protocols/supervision.py", "protocols/scripted.py",
    "systems/ping.py", "systems/inspect.py", "systems/chaos.py", "systems/testing.py",
    "systems/game.py", "systems/smart_home.py",
    "systems/observer/__init__.py", "systems/observer/state.py", "systems/observer/metrics.py",
    "systems/observer/server.py", "systems/bench/observe.py",
    "actors/ping/__init__.py",
    "actors/game/auth.py", "actors/game/bots.py", "actors/game/lobby.py", "actors/game/engine.py", "actors/game/match.py",
    "actors/game/limits.py", "actors/game/ws.py",
    "actors/game/room.py", "actors/game/server.py",
    "actors/smart_home/_shared.py", "actors/smart_home/api.py", "actors/smart_home/analyzers.py", "actors/smart_home/chart.py",
    "actors/smart_home/ingest.py", "actors/smart_home/writer.py",
    "protocols/car.py", "systems/car.py", "actors/car/vss.py", "actors/car/tree.py",
    "actors/car/holder.py", "actors/car/client.py", "actors/car/simulator.py",
    "actors/car/history.py", "systems/bench/car/main.py", "systems/bench/car/bare.py",
    "systems/bench/car/helpers.py",
    "protocols/inference.py", "systems/inference.py", "actors/inference/__init__.py",
    "actors/inference/batching.py", "actors/inference/work.py", "actors/inference/store.py",
    "actors/inference/model.py", "actors/inference/uploads.py", "actors/inference/edge.py",
    "actors/inference/dispatcher.py", "actors/inference/worker.py", "actors/inference/load.py",
    "systems/bench/inference/main.py",
]


def test_the_strict_modules_type_check() -> None:
    out, err, status = api.run(["--strict", "--follow-imports=silent", "--no-error-summary",
                                "--config-file", str(ROOT / "pyproject.toml"),
                                *[str(ROOT / p) for p in STRICT]])
    assert status == 0, out + err
