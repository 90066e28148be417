"""The live supervision tree, as ``ptr inspect`` shows it (Erlang's observer, in text).

Walks the tree from the root with OTP's ``which_children`` and asks every running actor for its
``ActorStats``. A supervisor with thousands of (light) children shows the first ``limit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from protocols.errors import PtrError
from protocols.supervision import ActorStats, ChildrenReport, GetActorStats, ListNodes
from systems.runtime import ActorRuntime


@dataclass
class ActorView:
    path: str
    actor_class: str
    status: str
    node: str = ""
    pid: int = 0
    restarts: int = 0
    restart_budget_left: int | None = None   # a supervisor's own budget
    last_exit: str = ""
    last_exit_at: float = 0.0
    handled: int | None = None
    queued: int | None = None
    name: str = ""
    depth: int = 0
    more: int = 0                             # children not shown past the limit
    detail: list[str] = field(default_factory=list)  # what the actor says of its own state


def _stats(rt: ActorRuntime, address: Any) -> ActorStats | None:
    try:
        stats = rt.ask(address, GetActorStats(), 1.0)
    except PtrError:
        return None
    return stats if isinstance(stats, ActorStats) else None


def live_tree(rt: ActorRuntime, limit: int = 50) -> list[ActorView]:
    report = rt.which_children(rt.root)
    stats = _stats(rt, rt.root)
    views = [ActorView(path=report.path, actor_class="RootSupervisor", status="running",
                       node=stats.node if stats else "", pid=stats.pid if stats else 0,
                       restart_budget_left=report.restart_budget_left,
                       handled=stats.handled if stats else None)]
    _walk(rt, report, 1, limit, views)
    return views


def _walk(rt: ActorRuntime, report: ChildrenReport, depth: int, limit: int,
          views: list[ActorView]) -> None:
    for index, child in enumerate(report.children):
        if index >= limit:
            views.append(ActorView(path=f"{report.path}/…", actor_class="", status="",
                                   depth=depth, more=len(report.children) - limit))
            return
        view = ActorView(path=f"{report.path}/{child.child_id}", actor_class=child.actor_class,
                         status=child.status, node=child.node, pid=child.pid,
                         restarts=child.restarts, name=child.name, depth=depth,
                         last_exit=str(child.last_exit) if child.last_exit else "",
                         last_exit_at=child.last_exit_at)
        sub = None
        if child.status == "running" and child.address is not None:
            stats = _stats(rt, child.address)
            if stats is not None:
                view.handled, view.queued = stats.handled, stats.queued
                view.detail = list(stats.detail)
            if child.is_supervisor:
                try:
                    sub = rt.which_children(child.address, 2.0)
                    view.restart_budget_left = sub.restart_budget_left
                except PtrError:
                    sub = None
        views.append(view)
        if sub is not None:
            _walk(rt, sub, depth + 1, limit, views)


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


def render(views: list[ActorView], node_caps: dict[str, dict[str, Any]]) -> str:
    lines = []
    for v in views:
        indent = "  " * v.depth
        if v.more:
            lines.append(f"{indent}… {v.more} more children")
            continue
        name = v.path.rsplit("/", 1)[1] or v.path
        queued = "-" if v.queued is None or v.queued < 0 else str(v.queued)
        handled = "-" if v.handled is None else str(v.handled)
        budget = "" if v.restart_budget_left is None else f" budget {v.restart_budget_left}"
        exit_text = ""
        if v.last_exit:
            when = time.strftime("%H:%M:%S", time.localtime(v.last_exit_at))
            exit_text = f"  last exit {v.last_exit} at {when}"
        lines.append(f"{indent}{name:<14} {v.actor_class:<20} {v.status:<11} node {v.node or '-'}"
                     f" pid {v.pid or '-'} restarts {v.restarts}{budget} handled {handled}"
                     f" queued {queued}{exit_text}")
        lines.extend(f"{indent}  | {line}" for line in v.detail)
    for node, caps in sorted(node_caps.items()):
        shown = {k: v for k, v in caps.items() if not k.startswith(("Admin", "Convention"))}
        lines.append(f"node {node}: {shown}")
    return "\n".join(lines)


def as_json(views: list[ActorView], node_caps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"actors": [asdict(v) for v in views],
            "nodes": {k: {ck: str(cv) for ck, cv in caps.items()} for k, caps in node_caps.items()}}
