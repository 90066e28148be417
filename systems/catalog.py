"""Every system ``ptr`` can run, by name."""

from __future__ import annotations

from protocols.errors import ConfigError
from systems.spec import SystemSpec


def systems() -> dict[str, SystemSpec]:
    from systems import ping
    found = [ping.SYSTEM]
    found.append(__import__("systems.game", fromlist=["SYSTEM"]).SYSTEM)
    from systems import smart_home
    found.append(smart_home.SYSTEM)
    from systems import grid
    found.append(grid.SYSTEM)
    return {s.name: s for s in found}


def get(name: str) -> SystemSpec:
    known = systems()
    if name not in known:
        raise ConfigError(f"unknown system {name!r}; known: {', '.join(sorted(known))}")
    return known[name]
