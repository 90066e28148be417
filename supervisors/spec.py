"""Supervisor and child specs: plain data, validated when built, free of side effects.

Defaults follow Elixir's Supervisor (intensity 3 restarts in 5 s; workers get 5,000 ms to stop,
supervisors unlimited), which are OTP's own but for intensity 1, too eager to give up for
processes that take milliseconds to restart.

Every invalid value is a ``SpecError`` naming the child, never a ``ValueError`` or ``TypeError``.
What can only be checked where the child runs (that an actor named by a string imports) is checked
by the supervisor before it starts the child (``resolve_actor``), with the same error.
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from pydantic import ValidationError

from actors.base import Actor
from actors.light import LightActor, LightHost
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


class AutoShutdown(str, Enum):
    """When a supervisor stops itself because its *significant* children ended (OTP 24)."""

    NEVER = "never"                      # never; a significant child is then an invalid spec
    ANY_SIGNIFICANT = "any_significant"  # when any significant child ends by itself
    ALL_SIGNIFICANT = "all_significant"  # when the last running significant child ends by itself


def _enum(kind: type[Enum], value: Any, what: str, child_id: str | None = None) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
        raise SpecError(f"invalid {what} {value!r}; choose one of {choices}",
                        child_id=child_id) from None


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and float(value).is_integer()


_RESOLVED: dict[str, type] = {}


SUPERVISOR = "supervisors.supervisor.Supervisor"
LIGHT_SUPERVISOR = "supervisors.supervisor.LightSupervisor"


def resolve_actor(actor: type | str, child_id: str | None = None) -> type:
    """The actor class a spec names: the class itself, or ``"package.module.Class"`` imported.

    Raises ``SpecError`` (naming the child) when the name does not import or is not a ptr actor.
    """
    if isinstance(actor, type):
        return actor
    cached = _RESOLVED.get(actor)
    if cached is not None:
        return cached
    module_name, _, class_name = actor.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except Exception as exc:  # noqa: BLE001 (any import failure is the spec's fault: a SpecError)
        raise SpecError(f"actor {actor!r} cannot be imported: {type(exc).__name__}: {exc}",
                        child_id=child_id) from None
    if not (isinstance(found, type) and issubclass(found, (Actor, LightActor))):
        raise SpecError(f"actor {actor!r} is not a ptr Actor or LightActor", child_id=child_id)
    _RESOLVED[actor] = found
    return found


def _check_args(actor: type | str, args: Mapping[str, Any], cid: str) -> None:
    """A class with an ``Args`` model gets its args checked now: a bad value names the field."""
    model = getattr(actor, "Args", None) if isinstance(actor, type) else None
    if model is None:
        return
    try:
        model.model_validate(dict(args))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "args"
        raise SpecError(f"{getattr(actor, '__name__', actor)} arg {where!r}: {first['msg']}",
                        child_id=cid) from None


@dataclass(frozen=True)
class ChildSpec:
    """One child: what to run, how to restart it, how long it may take to stop, where it may run.

    ``shutdown_ms``: ``BRUTAL_KILL`` (0) kills at once, ``INFINITY`` (None) waits for ever, any
    other value is the grace time after which the child's process is killed.
    ``requirements``: Thespian capabilities a node must have to host the child (``{"role": "edge"}``).
    ``host``: run as a light actor inside the ``LightHost`` registered under this name (a host's
    name is its child id, see ``host_spec``); under a light supervisor, None means its own host.
    ``significant``: its own end may stop its supervisor (see ``AutoShutdown``); transient or
    temporary children only, under a supervisor whose ``auto_shutdown`` is not ``never``.
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
    significant: bool = False
    supervises: SupervisorSpec | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``SpecError`` naming the child if anything in it is invalid (run when built; a
        supervisor runs it again on a spec it receives in ``StartChild``)."""
        cid = self.id if isinstance(self.id, str) else repr(self.id)
        if not isinstance(self.id, str) or not self.id or "/" in self.id:
            raise SpecError("a child id must be a non-empty string with no '/'", child_id=cid)
        if isinstance(self.actor, type):
            if not issubclass(self.actor, (Actor, LightActor)):
                raise SpecError(f"{self.actor.__name__} is not a ptr Actor", child_id=cid)
            if self.host is not None and not issubclass(self.actor, LightActor):
                raise SpecError(f"{self.actor.__name__} is a process actor; only a LightActor "
                                f"runs in host {self.host!r}", child_id=cid)
        elif not isinstance(self.actor, str) or not self.actor:
            raise SpecError(f"actor must be an actor class or 'module.Class', got {self.actor!r}",
                            child_id=cid)
        if not isinstance(self.args, Mapping):
            raise SpecError(f"args must be a mapping, got {type(self.args).__name__}", child_id=cid)
        if self.supervises is None and isinstance(self.args.get("spec"), SupervisorSpec):
            object.__setattr__(self, "supervises", self.args["spec"])  # the older way to say it
        if self.supervises is not None:
            if not isinstance(self.supervises, SupervisorSpec):
                raise SpecError(f"supervises must be a SupervisorSpec, got "
                                f"{type(self.supervises).__name__}", child_id=cid)
            # the supervisor process finds its spec in its Init args
            object.__setattr__(self, "args", {**self.args, "spec": self.supervises})
        else:
            _check_args(self.actor, self.args, cid)
        restart = _enum(RestartType, self.restart, "restart type", cid)
        object.__setattr__(self, "restart", restart)
        if self.shutdown_ms is not None and (not isinstance(self.shutdown_ms, numbers.Real)
                                             or isinstance(self.shutdown_ms, bool)
                                             or self.shutdown_ms < 0):
            raise SpecError(f"shutdown_ms must be a number >= 0 or None (infinity), got "
                            f"{self.shutdown_ms!r}", child_id=cid)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise SpecError(f"name must be a non-empty string or None, got {self.name!r}",
                            child_id=cid)
        if self.requirements is not None and not isinstance(self.requirements, Mapping):
            raise SpecError("requirements must be a mapping or None", child_id=cid)
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise SpecError("backoff must be a Backoff or None", child_id=cid)
        if self.backoff is not None and restart is RestartType.TEMPORARY:
            raise SpecError("a temporary child is never restarted, so it cannot back off",
                            child_id=cid)
        if self.host is not None and (not isinstance(self.host, str) or not self.host):
            raise SpecError(f"host must be a host's name or None, got {self.host!r}", child_id=cid)
        if not isinstance(self.significant, bool):
            raise SpecError(f"significant must be True or False, got {self.significant!r}",
                            child_id=cid)
        if self.significant and restart is RestartType.PERMANENT:
            raise SpecError("a permanent child cannot be significant (OTP: bad_combination)",
                            child_id=cid)

    @property
    def is_light(self) -> bool:
        return issubclass(resolve_actor(self.actor, self.id), LightActor)

    @property
    def actor_name(self) -> str:
        """The actor's class name (the last part of a dotted name)."""
        return self.actor.rpartition(".")[2] if isinstance(self.actor, str) else self.actor.__name__

    @property
    def is_supervisor(self) -> bool:
        """This child is a supervisor: ``supervises`` holds its spec."""
        return self.supervises is not None

    def with_id(self, child_id: str, extra_args: Mapping[str, Any] | None = None) -> ChildSpec:
        return replace(self, id=child_id, args={**self.args, **(extra_args or {})})


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity, and children in start order."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    children: Sequence[ChildSpec] = ()
    intensity: int = DEFAULT_INTENSITY
    period_s: float = DEFAULT_PERIOD_S
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", _enum(Strategy, self.strategy, "strategy"))
        object.__setattr__(self, "auto_shutdown",
                           _enum(AutoShutdown, self.auto_shutdown, "auto_shutdown"))
        if isinstance(self.children, (str, bytes)) or not isinstance(self.children, Sequence):
            raise SpecError(f"children must be a sequence of ChildSpec, got "
                            f"{type(self.children).__name__}")
        object.__setattr__(self, "children", tuple(self.children))
        if not isinstance(self.intensity, int) or isinstance(self.intensity, bool) \
                or self.intensity < 0:
            raise SpecError(f"intensity must be an integer >= 0, got {self.intensity!r}")
        if not _whole(self.period_s) or self.period_s <= 0:
            raise SpecError(f"period_s must be a whole number of seconds > 0 (OTP counts restarts "
                            f"in whole seconds), got {self.period_s!r}")
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise SpecError(f"a child must be a ChildSpec, got {type(child).__name__}")
            if child.id in seen:
                raise SpecError("duplicate child id", child_id=child.id)
            seen.add(child.id)
            self.check_child(child)
        if self.strategy is Strategy.SIMPLE_ONE_FOR_ONE and len(self.children) != 1:
            raise SpecError("simple_one_for_one takes exactly one child spec, the template")
        names = [n for n in self.registered_names()]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SpecError(f"name {sorted(dupes)[0]!r} is registered twice in the tree")

    def check_child(self, child: ChildSpec) -> None:
        """Raise ``SpecError`` if ``child`` may not run under this supervisor."""
        if child.significant and self.auto_shutdown is AutoShutdown.NEVER:
            raise SpecError("a significant child needs a supervisor whose auto_shutdown is not "
                            "'never' (OTP: bad_combination)", child_id=child.id)

    def registered_names(self) -> list[str]:
        """Every registered name in this subtree (a name must be unique in a system)."""
        names: list[str] = []
        for child in self.children:
            if child.name:
                names.append(child.name)
            if child.is_supervisor:
                assert child.supervises is not None
                names.extend(child.supervises.registered_names())
        return names

    def as_child(self, child_id: str, *, name: str | None = None,
                 restart: RestartType = RestartType.PERMANENT,
                 requirements: Mapping[str, Any] | None = None,
                 actor: type | str | None = None, host: str | None = None,
                 light: bool = False, significant: bool = False) -> ChildSpec:
        """This supervisor as a child of another (shutdown: infinity, as OTP's supervisors).

        With ``host`` (or ``light`` under a light supervisor) it is a light supervisor. The default
        class is named, not imported (as an OTP child spec names its module): the supervisor
        module reads these specs, so this one does not read it back.
        """
        default = LIGHT_SUPERVISOR if (host or light) else SUPERVISOR
        return ChildSpec(id=child_id, actor=actor or default, supervises=self,
                         restart=restart, shutdown_ms=INFINITY, name=name,
                         requirements=requirements, host=host, significant=significant)


def host_spec(name: str, *, requirements: Mapping[str, Any] | None = None,
              restart: RestartType = RestartType.PERMANENT) -> ChildSpec:
    """A ``LightHost`` process registered as ``name``: light children say ``host=name``."""
    return ChildSpec(id=name, actor=LightHost, name=name, requirements=requirements,
                     restart=restart, shutdown_ms=DEFAULT_WORKER_SHUTDOWN_MS)
