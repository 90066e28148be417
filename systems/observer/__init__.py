"""The web observer: a live page of a running system's tree, its metrics, and faults on request.

Read ``state`` first (plain objects: snapshots, the timeline, process samples, tested without an
actor system), then ``metrics`` (the Prometheus families) and ``server`` (``Observer``: the page,
server-sent events, ``/metrics`` and the fault API, served from a loop thread).
"""

from systems.observer.metrics import TreeCollector
from systems.observer.server import Observer, ObserverConfig
from systems.observer.state import FaultRequest, ObservedState, ProcessSampler

__all__ = ["FaultRequest", "ObservedState", "Observer", "ObserverConfig", "ProcessSampler",
           "TreeCollector"]
