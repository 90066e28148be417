"""Who keeps actors alive: OTP supervisors on Thespian, their specs, restart limits and backoff.

Read ``spec`` for what a tree declares and ``supervisor`` for what happens when a child exits.
"""

from supervisors.backoff import Backoff
from supervisors.restart_window import RestartWindow
from supervisors.root import RootSupervisor
from supervisors.spec import (
    BRUTAL_KILL,
    DEFAULT_INTENSITY,
    DEFAULT_PERIOD_S,
    INFINITY,
    ChildSpec,
    RestartType,
    Strategy,
    SupervisorSpec,
    host_spec,
)
from supervisors.supervisor import LightSupervisor, Supervisor

__all__ = ["BRUTAL_KILL", "DEFAULT_INTENSITY", "DEFAULT_PERIOD_S", "INFINITY", "Backoff",
           "ChildSpec", "LightSupervisor", "RestartType", "RestartWindow", "RootSupervisor",
           "Strategy", "Supervisor", "SupervisorSpec", "host_spec"]
