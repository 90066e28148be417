"""Every system ``ptr`` can run, by name."""

from __future__ import annotations

from protocols.errors import ConfigError
from systems.spec import SystemSpec


def systems() -> dict[str, SystemSpec]:
    """Each system by name (imported here, when asked: the framework imports no system)."""
    from systems import car, credit, game, grid, inference, ping, smart_home
    found = [ping, smart_home, car, game, grid, credit, inference]
    return {module.SYSTEM.name: module.SYSTEM for module in found}


def get(name: str) -> SystemSpec:
    known = systems()
    if name not in known:
        raise ConfigError(f"unknown system {name!r}; known: {', '.join(sorted(known))}")
    return known[name]
