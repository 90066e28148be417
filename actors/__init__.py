"""Who says it: ptr's actors of both weights, and the actors of each system.

Read ``behaviour.ActorBehaviour`` (the programming model), then ``base.Actor`` (a process actor)
and ``light.LightActor``/``light.LightHost`` (thousands inside one process). ``testing`` holds the
faulty actor that drives fault tests; ``edges`` and ``storage`` are the parts systems share.
"""

from actors.base import Actor
from actors.behaviour import ActorBehaviour, ReplyTo, node_name
from actors.light import LightActor, LightHost, MailboxOverflowError
from actors.timers import TimerTable, TimerTick
from protocols.errors import ChaosInjectedError, RequestFailedError

__all__ = ["Actor", "ActorBehaviour", "ChaosInjectedError", "LightActor", "LightHost",
           "MailboxOverflowError", "ReplyTo", "RequestFailedError", "TimerTable", "TimerTick",
           "node_name"]
