"""What actors and supervisors say to each other: exit reasons and the control messages.

These are plain data. Addresses are carried as opaque values (Thespian's ``ActorAddress`` pickles);
nothing here imports Thespian.
"""

from __future__ import annotations

import traceback as _traceback
from enum import Enum
from typing import Any, Literal

from protocols.message import Message


class ExitKind(str, Enum):
    NORMAL = "normal"       # the actor chose to stop
    SHUTDOWN = "shutdown"   # its supervisor (or the system) stopped it, or a supervisor gave up
    ERROR = "error"         # an exception escaped a handler or on_start
    KILLED = "killed"       # the process vanished without a word: SIGKILL, os._exit, OOM


class ExitReason(Message):
    """Why an actor left. ``normal`` and ``shutdown`` are normal exits in OTP's sense."""

    exit_kind: ExitKind
    error_type: str = ""
    text: str = ""
    traceback: str = ""

    @property
    def is_abnormal(self) -> bool:
        """A transient child is restarted only on an abnormal exit (OTP)."""
        return self.exit_kind in (ExitKind.ERROR, ExitKind.KILLED)

    def __str__(self) -> str:
        if self.exit_kind is ExitKind.ERROR:
            return f"error: {self.error_type}: {self.text}"
        return f"{self.exit_kind.value}{': ' + self.text if self.text else ''}"

    @classmethod
    def normal(cls, text: str = "") -> ExitReason:
        return cls(exit_kind=ExitKind.NORMAL, text=text)

    @classmethod
    def shutdown(cls, text: str = "") -> ExitReason:
        return cls(exit_kind=ExitKind.SHUTDOWN, text=text)

    @classmethod
    def killed(cls, text: str = "process exited without notice") -> ExitReason:
        return cls(exit_kind=ExitKind.KILLED, text=text)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExitReason:
        tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(exit_kind=ExitKind.ERROR, error_type=type(exc).__name__, text=str(exc),
                   traceback=tb[-8000:])


# --- lifecycle: supervisor <-> child ------------------------------------------------------------

class Init(Message):
    """First message to a new actor: who it is and who supervises it. ``on_start`` runs on it."""

    child_id: str
    path: str
    parent: Any
    root: Any
    args: dict[str, Any] = {}
    incarnation: int = 0


class Started(Message):
    """The child's ``on_start`` returned: it is running at ``address`` in OS process ``pid``."""

    child_id: str
    incarnation: int
    address: Any
    pid: int
    sid: int
    node: str = ""


class ExitNotice(Message):
    """A child is leaving (crash, normal stop, or a ``Shutdown`` from anyone) and waits for its
    supervisor to end it. Sent while the child is still starting, it means the start failed."""

    child_id: str
    incarnation: int
    reason: ExitReason


class Ignored(Message):
    """A child's ``on_start`` returned ``IGNORE`` (OTP's ``ignore``): it did not start, and that is
    not a failure. The supervisor keeps its spec, not running, or drops it (temporary and
    simple_one_for_one children), and answers the start with no address and no error."""

    child_id: str
    incarnation: int


class Shutdown(Message):
    """Ask an actor to stop: it runs ``on_stop`` (a supervisor first stops its children) and exits."""

    reason: ExitReason = ExitReason.shutdown()


# --- request / reply ----------------------------------------------------------------------------

class Request(Message):
    """Envelope for a request: the handler's return value comes back as a ``Reply``."""

    correlation_id: str
    body: Any


class Reply(Message):
    correlation_id: str
    body: Any = None
    error: str = ""


# --- registry -----------------------------------------------------------------------------------

class RegisterName(Message):
    """To the root, in a request: register ``name`` for the child at ``path``. Answered with a
    ``RegisterNameReply``; a name another child holds is refused (OTP's ``already_started``)."""

    name: str
    address: Any
    path: str
    pid: int = 0     # the OS process it runs in, on ``node``
    node: str = ""


class RegisterNameReply(Message):
    name: str
    registered: bool
    holder: Any = None        # when refused: the address that holds the name
    holder_path: str = ""


class UnregisterName(Message):
    name: str
    address: Any


class UnregisterSubtree(Message):
    """To the root: a child's process was killed, and its subtree with it (linked death); every
    name registered under ``path_prefix`` whose process is gone is gone."""

    path_prefix: str


class Whereis(Message):
    name: str


class WhereisReply(Message):
    name: str
    address: Any = None


# --- OTP's supervisor API: the child API and introspection ---------------------------------------

ChildError = Literal["", "already_started", "already_present", "invalid", "failed", "running",
                     "restarting", "not_found", "simple_one_for_one", "unavailable"]
"""Why a child request was refused (OTP's ``{error, ...}``); "" means it succeeded.

``already_started`` the id (or the registered name) belongs to a running child; ``already_present``
the id has a spec whose child is not running; ``invalid`` the spec is invalid (a ``SpecError``);
``failed`` the child's start failed (``reason`` says why); ``running`` / ``restarting`` the child
must not be running / is about to be restarted; ``not_found`` no such child; ``simple_one_for_one``
not available under that strategy; ``unavailable`` the supervisor is shutting down."""


class StartChild(Message):
    """Add a child (OTP's ``start_child``): a full ``ChildSpec`` or, under simple_one_for_one, args
    for the template. Answered with a ``StartChildReply`` once the child started, or failed."""

    spec: Any = None
    args: dict[str, Any] = {}


class StartChildReply(Message):
    """The answer to ``StartChild`` and ``RestartChild``. ``address`` None with no ``error``: the
    child's start answered ignore (OTP's ``{ok, undefined}``)."""

    child_id: str
    address: Any = None
    error: str = ""
    error_kind: ChildError = ""
    reason: ExitReason | None = None   # error_kind failed: why the start failed

    @property
    def ignored(self) -> bool:
        return not self.error and self.address is None


class RestartChild(Message):
    """OTP's ``restart_child``: start again a child whose spec is kept and whose process is not
    running (terminated, exited without restart, or ignored). Answered with a ``StartChildReply``;
    errors: running, restarting, not_found, simple_one_for_one, failed."""

    child_id: str


class DeleteChild(Message):
    """OTP's ``delete_child``: forget the spec of a child that is not running."""

    child_id: str


class DeleteChildReply(Message):
    child_id: str
    error: ChildError = ""     # running, restarting, not_found, simple_one_for_one


class CountChildren(Message):
    """OTP's ``count_children``: answered with ``ChildCounts``."""


class ChildCounts(Message):
    """``specs`` child specs, dead or alive (1, the template, under simple_one_for_one, as OTP);
    ``active`` children running; ``supervisors`` / ``workers`` children of each type, running or
    not."""

    specs: int
    active: int
    supervisors: int
    workers: int


class WhichChild(Message):
    """OTP's ``which_child``: one child's ``ChildInfo``, or error not_found."""

    child_id: str


class StartChildren(Message):
    """simple_one_for_one only: start ``count`` children of the template at once (light hosts start
    thousands this way). Answered when the supervisor has started what it could synchronously."""

    count: int
    args: dict[str, Any] = {}


class StartChildrenReply(Message):
    running: int
    pending: int
    first_id: str = ""
    last_id: str = ""


class TerminateChild(Message):
    """OTP's ``terminate_child``: stop the child (within its shutdown time) and keep its spec
    (temporary and simple_one_for_one children are forgotten). Answered once it has stopped."""

    child_id: str


class TerminateChildReply(Message):
    child_id: str
    found: bool
    error: ChildError = ""     # not_found


class WhichChildren(Message):
    """OTP's which_children: the supervisor answers with a ``ChildrenReport``."""


ChildStatus = Literal["starting", "running", "stopping", "restarting", "stopped", "unplaceable"]


class ChildInfo(Message):
    child_id: str
    actor_class: str
    status: ChildStatus
    address: Any = None
    pid: int = 0
    node: str = ""
    restarts: int = 0
    is_supervisor: bool = False
    last_exit: ExitReason | None = None
    last_exit_at: float = 0.0
    name: str = ""
    significant: bool = False
    restart_in_s: float = 0.0  # a child waiting out a backoff: seconds until its restart
    exits: dict[str, int] = {}  # exits it was not asked for, by kind (error, killed...), ever


class WhichChildReply(Message):
    child_id: str
    info: ChildInfo | None = None
    error: ChildError = ""     # not_found


class ChildrenReport(Message):
    path: str
    children: list[ChildInfo]
    restart_budget_left: int
    intensity: int
    period_s: float


class GetActorStats(Message):
    """Ask any ptr actor for its ``ActorStats`` (``ptr inspect``)."""


class ActorStats(Message):
    """What an actor reports about itself to ``ptr inspect``."""

    path: str
    actor_class: str
    pid: int
    node: str
    handled: int
    queued: int = -1          # light actors know their mailbox; Thespian does not expose its queue
    refused_senders: int = 0  # messages refused because the sender may not send them (only_from)
    detail: tuple[str, ...] = ()  # lines the actor adds about its own state (``stats_detail``)


class Heartbeat(Message):
    """A supervisor checks a child on another node (Thespian notices a lost node only after ~20 min)."""


class HeartbeatAck(Message):
    child_id: str
    incarnation: int


class NodeLost(Message):
    """A supervisor lost contact with ``node``: the root tells Thespian to stop placing actors there."""

    node: str


class ListNodes(Message):
    """Ask the root which other nodes are in the convention: ``{node: capabilities}``."""


class ChaosCrash(Message):
    """Fault injection: raise in the handler (reason error)."""


class ChaosDelay(Message):
    """Fault injection: wait ``ms`` before handling each message, for ``for_s`` seconds."""

    ms: float
    for_s: float


class ChaosDrop(Message):
    """Fault injection: drop every message but lifecycle and chaos ones, for ``for_s`` seconds."""

    for_s: float
