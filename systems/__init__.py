"""How whole systems are arranged and started: the runtime, system definitions and the ``ptr`` CLI.

Read ``runtime.ActorRuntime`` first: it is the only code that talks to Thespian's ActorSystem.
"""

from systems.runtime import ActorRuntime, running

__all__ = ["ActorRuntime", "running"]
