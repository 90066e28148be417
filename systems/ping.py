"""The ping system: a pinger asks a ponger by name once per interval. Used by the README and tests."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from actors.ping import Pinger, Ponger
from protocols.ping import PingReport, PingStats
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec


class PingSettings(SystemSettings):
    interval_s: float = Field(default=0.5, gt=0)
    """seconds between two pings"""


def build_tree(settings: PingSettings) -> SupervisorSpec:
    return SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec("ponger", Ponger, name="ponger"),
        ChildSpec("pinger", Pinger, name="pinger",
                  args={"interval_s": settings.interval_s, "target": "ponger"}),
    ])


def status(runtime: Any, settings: PingSettings) -> str:
    report = runtime.ask("pinger", PingStats(), 2)
    assert isinstance(report, PingReport)
    return (f"pings sent {report.sent}, answered {report.answered}, "
            f"last round trip {report.last_round_trip_ms:.2f} ms")


SYSTEM = SystemSpec(name="ping", summary="a pinger asks a ponger by name; the smallest tree",
                    build_tree=build_tree, settings_model=PingSettings, status=status)
