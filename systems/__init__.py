"""How whole systems are arranged and started: the runtime, system definitions and the ``ptr`` CLI.

Read ``runtime.ActorRuntime`` first: it is the only code that talks to Thespian's ActorSystem.
``spec.SystemSpec`` declares a system; ``catalog`` lists them; ``chaos`` and ``inspect`` break and
show a running one.
"""

from systems.chaos import Chaos
from systems.runtime import ActorRuntime, NodeRuntime, running
from systems.spec import SystemSettings, SystemSpec

__all__ = ["ActorRuntime", "Chaos", "NodeRuntime", "SystemSettings", "SystemSpec", "running"]
