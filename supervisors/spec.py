"""Supervisor and child specs: plain data, validated when built, free of side effects.

Defaults follow Elixir's Supervisor (intensity 3 restarts in 5 s; workers get 5,000 ms to stop,
supervisors unlimited), which are OTP's own but for intensity 1, too eager to give up for
processes that take milliseconds to restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from actors.base import Actor
from actors.light import LightActor
from protocols.errors import SpecError
from supervisors.backoff import Backoff

DEFAULT_INTENSITY = 3
DEFAULT_PERIOD_S = 5.0
DEFAULT_WORKER_SHUTDOWN_MS = 5000
BRUTAL_KILL = 0
INFINITY = None


class Strategy(str, Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"


class RestartType(str, Enum):
    PERMANENT = "permanent"   # always restarted
    TRANSIENT = "transient"   # restarted only after an abnormal exit (error, killed)
    TEMPORARY = "temporary"   # never restarted


@dataclass(frozen=True)
class ChildSpec:
    """One child: what to run, how to restart it, how long it may take to stop, where it may run.

    ``shutdown_ms``: ``BRUTAL_KILL`` (0) kills at once, ``INFINITY`` (None) waits for ever, any
    other value is the grace time after which the child's process is killed.
    ``requirements``: Thespian capabilities a node must have to host the child (``{"role": "edge"}``).
    ``host``: run as a light actor inside the ``LightHost`` registered under this name (a host's
    name is its child id, see ``host_spec``); under a light supervisor, None means its own host.
    """

    id: str
    actor: type | str
    args: Mapping[str, Any] = field(default_factory=dict)
    restart: RestartType = RestartType.PERMANENT
    shutdown_ms: int | None = DEFAULT_WORKER_SHUTDOWN_MS
    name: str | None = None
    requirements: Mapping[str, Any] | None = None
    backoff: Backoff | None = None
    host: str | None = None

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise SpecError("a child id must be non-empty and contain no '/'", child_id=self.id)
        if isinstance(self.actor, type):
            if not issubclass(self.actor, (Actor, LightActor)):
                raise SpecError(f"{self.actor.__name__} is not a ptr Actor", child_id=self.id)
            if self.host is not None and not issubclass(self.actor, LightActor):
                raise SpecError(f"{self.actor.__name__} is a process actor; only a LightActor "
                                f"runs in host {self.host!r}", child_id=self.id)
        if self.shutdown_ms is not None and self.shutdown_ms < 0:
            raise SpecError("shutdown_ms must be >= 0 or None (infinity)", child_id=self.id)
        if self.backoff is not None and self.restart is RestartType.TEMPORARY:
            raise SpecError("a temporary child is never restarted, so it cannot back off",
                            child_id=self.id)
        object.__setattr__(self, "restart", RestartType(self.restart))

    @property
    def is_light(self) -> bool:
        return isinstance(self.actor, type) and issubclass(self.actor, LightActor)

    @property
    def actor_name(self) -> str:
        return self.actor if isinstance(self.actor, str) else self.actor.__name__

    @property
    def is_supervisor(self) -> bool:
        return isinstance(self.args.get("spec"), SupervisorSpec)

    def with_id(self, child_id: str, extra_args: Mapping[str, Any] | None = None) -> ChildSpec:
        return replace(self, id=child_id, args={**self.args, **(extra_args or {})})


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity, and children in start order."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    children: Sequence[ChildSpec] = ()
    intensity: int = DEFAULT_INTENSITY
    period_s: float = DEFAULT_PERIOD_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "children", tuple(self.children))
        if self.intensity < 0:
            raise SpecError(f"intensity must be >= 0, got {self.intensity}")
        if self.period_s <= 0:
            raise SpecError(f"period_s must be > 0, got {self.period_s}")
        seen: set[str] = set()
        for child in self.children:
            if child.id in seen:
                raise SpecError("duplicate child id", child_id=child.id)
            seen.add(child.id)
        if self.strategy is Strategy.SIMPLE_ONE_FOR_ONE and len(self.children) != 1:
            raise SpecError("simple_one_for_one takes exactly one child spec, the template")
        names = [n for n in self.registered_names()]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SpecError(f"name {sorted(dupes)[0]!r} is registered twice in the tree")

    def registered_names(self) -> list[str]:
        """Every registered name in this subtree (a name must be unique in a system)."""
        names: list[str] = []
        for child in self.children:
            if child.name:
                names.append(child.name)
            if child.is_supervisor:
                names.extend(child.args["spec"].registered_names())
        return names

    def as_child(self, child_id: str, *, name: str | None = None,
                 restart: RestartType = RestartType.PERMANENT,
                 requirements: Mapping[str, Any] | None = None,
                 actor: type | str | None = None, host: str | None = None,
                 light: bool = False) -> ChildSpec:
        """This supervisor as a child of another (shutdown: infinity, as OTP's supervisors).

        With ``host`` (or ``light`` under a light supervisor) it is a light supervisor.
        """
        from supervisors.supervisor import LightSupervisor, Supervisor
        default = LightSupervisor if (host or light) else Supervisor
        return ChildSpec(id=child_id, actor=actor or default, args={"spec": self},
                         restart=restart, shutdown_ms=INFINITY, name=name,
                         requirements=requirements, host=host)


def host_spec(name: str, *, requirements: Mapping[str, Any] | None = None,
              restart: RestartType = RestartType.PERMANENT) -> ChildSpec:
    """A ``LightHost`` process registered as ``name``: light children say ``host=name``."""
    from actors.light import LightHost
    return ChildSpec(id=name, actor=LightHost, name=name, requirements=requirements,
                     restart=restart, shutdown_ms=DEFAULT_WORKER_SHUTDOWN_MS)
