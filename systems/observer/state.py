"""What the observer knows: the latest snapshot of the tree, a timeline of what changed, and
counters that outlive incarnations. Plain objects fed with ``ActorView`` lists; no actor system.

Time comes in as an argument (wall-clock seconds), so tests drive it. Unknown values are ``None``
(``null`` in the page's JSON), as in ``ptr inspect --json``.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from systems.inspect import ActorView, NodeView

TIMELINE_MAX = 200
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

FaultKind = Literal["crash", "kill", "delay", "drop", "kill-node"]


class FaultRequest(BaseModel):
    """A fault asked for from the page: ``target`` is an actor's path (kill-node: a node's name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    target: str = Field(min_length=1, max_length=500)
    ms: float = Field(default=200.0, gt=0, le=60_000)
    for_s: float = Field(default=5.0, gt=0, le=3600)


@dataclass
class ProcessSample:
    cpu_seconds: float
    pss_bytes: int | None
    cpu_percent: float | None = None


class ProcessSampler:
    """CPU (from ``/proc/PID/stat``) and PSS memory (``/proc/PID/smaps_rollup``) of processes on
    this machine; CPU percent is over the time between two samples."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def sample(self, pids: set[int], now: float) -> dict[int, ProcessSample]:
        out: dict[int, ProcessSample] = {}
        for pid in pids:
            cpu = _cpu_seconds(pid)
            if cpu is None:
                continue
            sample = ProcessSample(cpu_seconds=cpu, pss_bytes=_pss_bytes(pid))
            before = self._last.get(pid)
            if before is not None and now > before[0]:
                sample.cpu_percent = round(100.0 * (cpu - before[1]) / (now - before[0]), 1)
            self._last[pid] = (now, cpu)
            out[pid] = sample
        for pid in set(self._last) - pids:
            del self._last[pid]
        return out


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def _pss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class TimelineEvent:
    at: float
    kind: str              # exit, restart, fault, node_lost, node_up
    target: str            # an actor's path or a node's name
    text: str
    traceback: str = ""


@dataclass
class _Seen:
    pid: int | None
    restarts: int
    last_exit_at: float | None
    handled: int
    at: float


@dataclass
class ObservedState:
    """Snapshots in, a JSON-ready view and monotonic counters out."""

    system: str
    chaos_allowed: bool = False
    local_node: str = ""            # processes of actors on this node are sampled
    timeline: deque[TimelineEvent] = field(default_factory=lambda: deque(maxlen=TIMELINE_MAX))
    exits: dict[tuple[str, str], int] = field(default_factory=dict)   # (path, kind) -> count
    exits_seen: dict[tuple[str, str], int] = field(default_factory=dict)  # as last reported
    handled_base: dict[str, int] = field(default_factory=dict)        # handled by past incarnations
    seen: dict[str, _Seen] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    views: list[ActorView] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    processes: dict[int, ProcessSample] = field(default_factory=dict)
    at: float = 0.0
    version: int = 0

    def record_fault(self, fault: FaultRequest, outcome: str, now: float) -> None:
        extra = {"delay": f" {fault.ms:g} ms for {fault.for_s:g} s",
                 "drop": f" for {fault.for_s:g} s"}.get(fault.kind, "")
        text = f"{fault.kind}{extra} from the observer: {outcome}"
        self.timeline.append(TimelineEvent(at=now, kind="fault", target=fault.target, text=text))

    def update(self, views: list[ActorView], node_list: list[NodeView],
               processes: dict[int, ProcessSample], now: float) -> None:
        for v in views:
            if v.more:
                continue
            before = self.seen.get(v.path)
            if before is not None and v.restarts > before.restarts:
                self.timeline.append(TimelineEvent(
                    at=max(now, v.last_exit_at or 0.0), kind="restart", target=v.path,
                    text=f"restarted (restart {v.restarts})"
                         + (f", now pid {v.pid}" if v.pid else "")))
            for kind, count in v.exits.items():  # the supervisor's counts, kept monotonic
                key = (v.path, kind)
                seen = self.exits_seen.get(key, 0)
                self.exits[key] = self.exits.get(key, 0) + (count - seen if count >= seen
                                                            else count)
                self.exits_seen[key] = count
            if v.last_exit_at and (before is None or before.last_exit_at != v.last_exit_at):
                self.timeline.append(TimelineEvent(at=v.last_exit_at, kind="exit", target=v.path,
                                                   text=v.last_exit,
                                                   traceback=v.last_exit_traceback))
            handled = v.handled or 0
            if before is not None and v.handled is not None:
                if handled < before.handled:  # a new incarnation counts from zero
                    self.handled_base[v.path] = self.handled_base.get(v.path, 0) + before.handled
                    self.rates[v.path] = handled / max(now - before.at, 1e-9)
                else:
                    self.rates[v.path] = (handled - before.handled) / max(now - before.at, 1e-9)
            self.seen[v.path] = _Seen(v.pid, v.restarts, v.last_exit_at, handled, now)
        current = {n.name for n in node_list}
        for n in node_list:
            known = self.nodes.get(n.name)
            if known is not None and known.status == "lost":
                self.timeline.append(TimelineEvent(at=now, kind="node_up", target=n.name,
                                                   text="joined again"))
            self.nodes[n.name] = n
        for name, known in self.nodes.items():
            if name not in current and known.status == "up":
                known.status, known.lost_at = "lost", now
                self.timeline.append(TimelineEvent(at=now, kind="node_lost", target=name,
                                                   text="left the convention (lost)"))
        self.views, self.processes, self.at = views, processes, now
        self.version += 1

    def process_of(self, view: ActorView) -> ProcessSample | None:
        """The sample of the actor's own OS process: on this machine, and not a light actor's host."""
        if view.light_host or not view.pid or view.node not in ("", self.local_node):
            return None
        return self.processes.get(view.pid)

    def handled_total(self, view: ActorView) -> int | None:
        if view.handled is None:
            return None
        return self.handled_base.get(view.path, 0) + view.handled

    def light_hosts(self) -> dict[str, int]:
        """Light actors per host (by the host's address key)."""
        counts: dict[str, int] = {}
        for v in self.views:
            if v.light_host and v.status == "running":
                counts[v.light_host] = counts.get(v.light_host, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        actors = []
        for v in self.views:
            row = asdict(v)
            sample = self.process_of(v)
            row["handled_total"] = self.handled_total(v)
            row["rate"] = round(self.rates[v.path], 1) if v.path in self.rates else None
            row["cpu_percent"] = sample.cpu_percent if sample else None
            row["pss_bytes"] = sample.pss_bytes if sample else None
            actors.append(row)
        return {"system": self.system, "at": self.at, "version": self.version,
                "chaos_allowed": self.chaos_allowed, "actors": actors,
                "nodes": [asdict(n) for n in self.nodes.values()],
                "light_hosts": [{"host": h, "actors": c} for h, c in
                                sorted(self.light_hosts().items())],
                "timeline": [asdict(e) for e in sorted(self.timeline, key=lambda e: -e.at)]}
