"""Every system can run beside every other on one machine: no two systems' default settings listen
on the same port (the grid's gateways and the credit search once both took 8450)."""

from __future__ import annotations

from systems import catalog


def test_no_two_systems_default_to_the_same_port() -> None:
    taken: dict[int, str] = {}
    clashes = []
    for name, system in sorted(catalog.systems().items()):
        ports = system.listen_ports(system.settings()) if system.listen_ports else {}
        for setting, port in ports.items():
            if port and port in taken and not taken[port].startswith(f"{name}."):
                clashes.append(f"{port}: {taken[port]} and {name}.{setting}")
            taken.setdefault(port, f"{name}.{setting}")
    assert clashes == []
    assert len({owner.split(".")[0] for owner in taken.values()}) >= 5, taken
