"""The live supervision tree, as ``ptr inspect`` and the web observer show it (Erlang's observer).

Walks the tree from the root with OTP's ``which_children`` and asks every running actor for its
``ActorStats``. A supervisor with thousands of (light) children shows the first ``limit``. Whatever
is not known (a light actor's pid, Thespian's mailbox depth) is ``None`` in Python, ``null`` in
JSON and ``-`` in the table: one representation of "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from protocols.errors import PtrError
from protocols.light import LightAddress
from protocols.supervision import ActorStats, ChildrenReport, GetActorStats, ListNodes
from systems.runtime import ActorRuntime

UNKNOWN = "-"
CONVENTION_KEYS = ("Admin", "Convention", "Thespian", "Python Version")  # not the user's


@dataclass
class ActorView:
    path: str
    actor_class: str
    status: str
    node: str = ""
    pid: int | None = None
    restarts: int = 0
    restart_budget_left: int | None = None   # a supervisor's own budget
    last_exit: str = ""
    last_exit_kind: str = ""
    last_exit_at: float | None = None
    last_exit_traceback: str = ""
    handled: int | None = None
    queued: int | None = None
    name: str = ""
    depth: int = 0
    more: int = 0                             # children not shown past the limit
    detail: list[str] = field(default_factory=list)  # what the actor says of its own state
    is_supervisor: bool = False
    light_host: str = ""                      # a light actor: its host's path (or address)
    exits: dict[str, int] = field(default_factory=dict)  # by kind, as its supervisor counted


@dataclass
class NodeView:
    """A node of the convention: its name, whether it answers, and its capabilities as data."""

    name: str
    status: str                               # "up" or "lost"
    capabilities: dict[str, str]
    lost_at: float | None = None


def _stats(rt: ActorRuntime, address: Any) -> ActorStats | None:
    try:
        stats = rt.ask(address, GetActorStats(), 1.0)
    except PtrError:
        return None
    return stats if isinstance(stats, ActorStats) else None


def _known(value: int | None) -> int | None:
    return None if value is None or value < 0 else value


def live_tree(rt: ActorRuntime, limit: int = 50) -> list[ActorView]:
    report = rt.which_children(rt.root)
    stats = _stats(rt, rt.root)
    views = [ActorView(path=report.path, actor_class="RootSupervisor", status="running",
                       node=stats.node if stats else "", pid=stats.pid if stats else None,
                       restart_budget_left=report.restart_budget_left,
                       handled=stats.handled if stats else None, is_supervisor=True)]
    hosts: dict[str, str] = {}
    _walk(rt, report, 1, limit, views, hosts)
    for view in views:  # a light actor's host, by its path where the host is in the tree
        view.light_host = hosts.get(view.light_host, view.light_host)
    return views


def _walk(rt: ActorRuntime, report: ChildrenReport, depth: int, limit: int,
          views: list[ActorView], hosts: dict[str, str]) -> None:
    for index, child in enumerate(report.children):
        if index >= limit:
            views.append(ActorView(path=f"{report.path}/…", actor_class="", status="",
                                   depth=depth, more=len(report.children) - limit))
            return
        light = type(child.address) is LightAddress
        if not light and child.address is not None:
            hosts[str(child.address)] = f"{report.path}/{child.child_id}"
        view = ActorView(path=f"{report.path}/{child.child_id}", actor_class=child.actor_class,
                         status=child.status, node=child.node, pid=child.pid or None,
                         restarts=child.restarts, name=child.name, depth=depth,
                         is_supervisor=child.is_supervisor, exits=dict(child.exits),
                         light_host=str(child.address.host) if light else "")
        if child.last_exit is not None:
            view.last_exit = str(child.last_exit)
            view.last_exit_kind = child.last_exit.exit_kind.value
            view.last_exit_at = child.last_exit_at or None
            view.last_exit_traceback = child.last_exit.traceback
        sub = None
        if child.status == "running" and child.address is not None:
            stats = _stats(rt, child.address)
            if stats is not None:
                view.handled, view.queued = stats.handled, _known(stats.queued)
                view.detail = list(stats.detail)
            if child.is_supervisor:
                try:
                    sub = rt.which_children(child.address, 2.0)
                    view.restart_budget_left = sub.restart_budget_left
                except PtrError:
                    sub = None
        views.append(view)
        if sub is not None:
            _walk(rt, sub, depth + 1, limit, views, hosts)


def system_figures(rt: ActorRuntime,
                   extra: Callable[[ActorRuntime], dict[str, Any]] | None) -> dict[str, Any]:
    """The system's own figures (``SystemSpec.inspect_extra``), or {} when it has none or a part
    it asks is restarting."""
    if extra is None:
        return {}
    try:
        return extra(rt)
    except PtrError as exc:
        return {"unavailable": type(exc).__name__}


def nodes(rt: ActorRuntime) -> dict[str, dict[str, Any]]:
    """Other nodes of the convention and their capabilities, as the root knows them."""
    try:
        return dict(rt.ask(rt.root, ListNodes(), 2.0))
    except PtrError:
        return {}


def node_views(node_caps: dict[str, dict[str, Any]]) -> list[NodeView]:
    return [NodeView(name=name, status="up",
                     capabilities={k: str(v) for k, v in sorted(caps.items())
                                   if not k.startswith(CONVENTION_KEYS)})
            for name, caps in sorted(node_caps.items())]


def _cell(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


COLUMNS = ("ACTOR", "CLASS", "STATUS", "NODE", "PID", "RESTARTS", "BUDGET", "HANDLED", "QUEUED",
           "LAST EXIT")


def render(views: list[ActorView], node_list: list[NodeView]) -> str:
    """A table with a header row (the tree drawn by indenting the first column), then the nodes."""
    rows: list[tuple[str, ...]] = []
    details: list[list[str]] = []
    for v in views:
        indent = "  " * v.depth
        if v.more:
            rows.append((f"{indent}… {v.more} more", *([""] * (len(COLUMNS) - 1))))
            details.append([])
            continue
        name = v.path.rsplit("/", 1)[1] or v.path
        exit_text = ""
        if v.last_exit:
            when = time.strftime("%H:%M:%S", time.localtime(v.last_exit_at or 0))
            exit_text = f"{v.last_exit} at {when}"
        rows.append((f"{indent}{name}", v.actor_class, v.status, _cell(v.node), _cell(v.pid),
                     str(v.restarts), _cell(v.restart_budget_left), _cell(v.handled),
                     _cell(v.queued), exit_text or UNKNOWN))
        details.append(v.detail)
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + "  " + COLUMNS[-1]]
    for r, detail in zip(rows, details):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        lines.extend(f"{' ' * (len(r[0]) - len(r[0].lstrip()))}  | {line}" for line in detail)
    if node_list:
        lines += ["", "NODE            STATUS  CAPABILITIES"]
        for n in node_list:
            caps = " ".join(f"{k}={v}" for k, v in n.capabilities.items()) or UNKNOWN
            lines.append(f"{n.name:<15} {n.status:<7} {caps}")
    return "\n".join(line.rstrip() for line in lines)


def as_json(views: list[ActorView], node_list: list[NodeView]) -> dict[str, Any]:
    return {"actors": [asdict(v) for v in views], "nodes": [asdict(n) for n in node_list]}
