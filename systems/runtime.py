"""The one module that talks to Thespian's ``ActorSystem``: start a tree, talk to it, stop it.

``ActorRuntime`` owns one actor system (``simple`` runs every actor in this process, for
deterministic tests; ``multiproc`` gives each actor an OS process on ``multiprocTCPBase``). It is a
context manager: leaving it always shuts the system down, so no admin or actor process outlives
the program. ``leftover_processes()`` proves it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from actors.system import (  # first: binds and authenticates Thespian's transport
    ActorExitRequest,
    ActorSystem,
    ActorSystemException,
    ActorTypeDispatcher,
    cookie_hex,
    frame_codec,
    refused_frames,
    set_cookie,
)

from protocols.light import LightAddress, LightBatch
from protocols.errors import (
    ActorSystemError,
    NoSuchNameError,
    RequestFailedError,
    RequestTimeoutError,
    SpecError,
)
from protocols.supervision import (
    ChildCounts,
    ChildrenReport,
    CountChildren,
    DeleteChild,
    DeleteChildReply,
    ExitNotice,
    ExitReason,
    Init,
    Reply,
    Request,
    RestartChild,
    Shutdown,
    StartChild,
    StartChildReply,
    Started,
    TerminateChild,
    TerminateChildReply,
    WhichChild,
    WhichChildReply,
    WhichChildren,
    Whereis,
    WhereisReply,
)
from supervisors.root import RootSupervisor
from actors.behaviour import node_name, set_node_name
from systems.processes import (
    kill_processes,
    pid_alive,
    processes_in_sessions,
    reap_zombie_children,
    zombie_children,
)
from supervisors.spec import SupervisorSpec

__all__ = ["ActorRuntime", "NodeRuntime", "cookie_hex", "frame_codec", "free_port", "refused_frames",
           "running", "set_cookie"]

Base = Literal["simple", "multiproc"]
_Answer = TypeVar("_Answer")
START_FAILED_STOP_S = 5.0  # a root that did not answer its start gets this long to stop
_STOP_POLL_S = 0.5         # how often a waiting shutdown checks that the root still lives
BASES: dict[str, str] = {"simple": "simpleSystemBase", "multiproc": "multiprocTCPBase"}

log = logging.getLogger("ptr.runtime")


def free_port() -> int:
    """A TCP port free on loopback now (the admin of a system binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thespian_log_defs(level: int = logging.WARNING) -> dict[str, Any]:
    """Actor logs (tracebacks of crashes included) go to stderr of the admin's process group."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                                "level": level}},
        "root": {"handlers": ["stderr"], "level": level},
        "disable_existing_loggers": False,
    }


class ActorRuntime:
    """A running system: its root supervisor, addresses by name, requests, and a clean stop."""

    def __init__(self, spec: SupervisorSpec, *, base: Base = "simple",
                 admin_port: int | None = None, capabilities: dict[str, Any] | None = None,
                 name: str = "root", start_timeout_s: float = 30.0,
                 log_level: int = logging.CRITICAL) -> None:
        if base not in BASES:
            raise ActorSystemError(f"unknown base {base!r}; choose one of {sorted(BASES)}")
        self.spec = spec
        self.base: Base = base
        self.admin_port = admin_port or (free_port() if base == "multiproc" else 0)
        self.capabilities = dict(capabilities or {})
        self.name = name
        self.start_timeout_s = start_timeout_s
        self.log_level = log_level
        self.system: ActorSystem | None = None
        self.root: Any = None
        self.root_pid = 0
        self.session_ids: set[int] = set()
        self.attached = False
        self.root_exit: ExitNotice | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ActorRuntime:
        caps = dict(self.capabilities)
        caps.setdefault("ptr.node", node_name())
        if self.base == "multiproc":
            caps.setdefault("Admin Port", self.admin_port)
        zombies_before = zombie_children()
        try:
            self.system = ActorSystem(BASES[self.base], capabilities=caps,
                                      logDefs=thespian_log_defs(self.log_level),
                                      transientUnique=True)
        except ActorSystemException as exc:
            raise ActorSystemError(f"cannot start the {self.base} actor system: {exc}") from exc
        try:
            self.root = self.system.createActor(RootSupervisor)
            reap_zombie_children(zombies_before)  # Thespian's first fork of the admin exits at once
            args: dict[str, Any] = {"spec": self.spec}
            if self.base == "multiproc":  # the root ends the system if this process dies
                args["owner_pid"] = os.getpid()
            init = Init(child_id=self.name, path=f"/{self.name}", parent=None, root=None,
                        args=args)
            answer = self._await(self.system.ask(self.root, init, self.start_timeout_s),
                                 lambda m: isinstance(m, (Started, ExitNotice)),
                                 self.start_timeout_s)
            if isinstance(answer, ExitNotice):
                self.root_exit = answer  # the root is gone already: nothing to stop
                raise ActorSystemError(f"the system failed to start: {answer.reason}")
            if answer is None:
                raise ActorSystemError(f"the system did not start within {self.start_timeout_s} s")
            self.root_pid = answer.pid
            if self.base == "multiproc":
                self.session_ids.add(answer.sid)
        except BaseException:
            self.shutdown(timeout_s=START_FAILED_STOP_S)
            raise
        return self

    @classmethod
    def attach(cls, admin_port: int, root: Any, name: str = "root") -> ActorRuntime:
        """Talk to a system another process runs (``ptr inspect``, ``ptr chaos``). Leaving an
        attached runtime leaves that system running."""
        runtime = cls(SupervisorSpec(), base="multiproc", admin_port=admin_port, name=name)
        try:
            runtime.system = ActorSystem(BASES["multiproc"], capabilities={"Admin Port": admin_port},
                                         logDefs=thespian_log_defs(logging.CRITICAL))
        except ActorSystemException as exc:
            raise ActorSystemError(f"no actor system answers on admin port {admin_port}") from exc
        runtime.root, runtime.attached = root, True
        return runtime

    def shutdown(self, timeout_s: float | None = None) -> ExitReason | None:
        """Stop the tree as OTP stops an application, then the actor system; return the root's
        exit reason (None if there was nothing to stop).

        The root is asked to stop with reason shutdown and stops its children in reverse start
        order, each within its own ``shutdown_ms`` (a supervisor waits for its subtree): the tree's
        specs bound how long that takes, and by default (``timeout_s=None``) this waits for it,
        as OTP waits for a top supervisor (shutdown infinity). ``timeout_s`` is OTP's
        ``-shutdown_time``: the most the whole stop may take; past it, every process still alive
        is killed, a warning names how many, and the reason returned is ``killed``. Either way no
        process of the system is left when this returns.
        """
        system, self.system = self.system, None
        if system is None or self.attached:
            return None
        reason: ExitReason | None = None
        try:
            reason = self._stop_tree(system, timeout_s)
        except Exception:  # the system is going away regardless; shutdown() below is what counts
            log.exception("graceful stop of the tree failed")
        finally:
            system.shutdown()
            self._reap()
        return reason

    def _stop_tree(self, system: ActorSystem, timeout_s: float | None) -> ExitReason | None:
        if self.root is None:
            return None
        gone = self.gone()
        if gone is not None:
            return self.root_exit.reason if self.root_exit else ExitReason.killed(gone)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        message = system.ask(self.root, Shutdown(), _STOP_POLL_S if deadline is None
                             else max(0.0, min(_STOP_POLL_S, timeout_s or 0.0)))
        while True:
            if self._saw_root_exit(message):
                assert self.root_exit is not None
                return self.root_exit.reason
            gone = self.gone()
            if gone is not None:  # the root's process died while stopping
                return ExitReason.killed(gone)
            wait = _STOP_POLL_S if deadline is None else min(_STOP_POLL_S,
                                                             deadline - time.monotonic())
            if wait <= 0:
                break
            message = system.listen(wait)
        left = self.leftover_processes()
        log.warning("%s: the tree did not stop within %g s: killing %d processes", self.name,
                    timeout_s, len(left))
        self._kill_actors()
        return ExitReason.killed(f"the tree did not stop within {timeout_s:g} s")

    def _kill_actors(self) -> None:
        """SIGKILL every actor process of this system but its admin (the admin leads the session)."""
        kill_processes([pid for pid in self.leftover_processes() if pid not in self.session_ids])

    def _reap(self, grace_s: float = 5.0) -> None:
        """Thespian's shutdown gives up on an admin or actor that does not answer in time (a busy
        process) and leaves it running. Whatever of this system's session outlives a grace period
        is killed: a stopped ptr system leaves no process, whatever its actors were doing."""
        left = self.wait_until_gone(grace_s)
        if left:
            log.warning("killing %d processes the actor system left behind: %s", len(left), left)
            kill_processes(left)
            self.wait_until_gone(grace_s)

    def __enter__(self) -> ActorRuntime:
        return self.start() if self.system is None else self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- talking to the tree ------------------------------------------------------------------

    def _await(self, first: Any, accept: Any, timeout_s: float,
               system: ActorSystem | None = None) -> Any:
        """Return the first message that ``accept`` takes; stale replies to earlier asks are dropped
        (but the root's ``ExitNotice`` is kept for ``gone()``, whoever was waiting when it came)."""
        system = system or self._require()
        deadline = time.monotonic() + timeout_s
        message = first
        while True:
            self._saw_root_exit(message)
            for item in _unbatch(message):
                if accept(item):
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            message = system.listen(remaining)

    def _require(self) -> ActorSystem:
        if self.system is None:
            raise ActorSystemError("the actor system is not running")
        return self.system

    def ask(self, target: Any, body: Any, timeout_s: float = 5.0) -> Any:
        """Request/reply with a correlation id; raises ``RequestTimeoutError`` with no reply in time."""
        system = self._require()
        address = self.whereis(target, timeout_s) if isinstance(target, str) else target
        cid = uuid.uuid4().hex
        to, envelope = _addressed(address, Request(correlation_id=cid, body=body))
        reply = self._await(system.ask(to, envelope, timeout_s),
                            lambda m: isinstance(m, Reply) and m.correlation_id == cid, timeout_s)
        if reply is None:
            raise RequestTimeoutError(str(target), type(body).__name__, timeout_s)
        if reply.error:
            raise RequestFailedError(f"{target} failed on {type(body).__name__}: {reply.error}")
        return reply.body

    def ask_plain(self, address: Any, message: Any, accept: type, timeout_s: float = 5.0) -> Any:
        """Ask an actor that answers without a ``Reply`` envelope (a plain Thespian actor)."""
        answer = self._await(self._require().ask(address, message, timeout_s),
                             lambda m: isinstance(m, accept), timeout_s)
        if answer is None:
            raise RequestTimeoutError(str(address), type(message).__name__, timeout_s)
        return answer

    def tell(self, target: Any, message: Any, timeout_s: float = 5.0) -> None:
        address = self.whereis(target, timeout_s) if isinstance(target, str) else target
        self._require().tell(*_addressed(address, message))

    def whereis(self, name: str, timeout_s: float = 5.0) -> Any:
        """The current address of a registered name, waiting up to ``timeout_s`` while it restarts."""
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.ask(self.root, Whereis(name=name), max(0.05, deadline - time.monotonic()))
            if isinstance(reply, WhereisReply) and reply.address is not None:
                return reply.address
            if time.monotonic() >= deadline:
                raise NoSuchNameError(name)
            self._require().listen(0.005)  # lets simpleSystemBase run pending work

    def which_children(self, supervisor: Any = None, timeout_s: float = 5.0) -> ChildrenReport:
        """OTP's which_children of the root, of a named supervisor, or of an address."""
        report = self.ask(self.root if supervisor is None else supervisor, WhichChildren(),
                          timeout_s)
        assert isinstance(report, ChildrenReport)
        return report

    # --- OTP's supervisor API, for any supervisor of the tree ------------------------------------
    # ``supervisor``: None for the root, a registered name, or an address. Answers are OTP's:
    # data, with ``error_kind`` saying why a request was refused; only an invalid spec raises.

    def start_child(self, spec_or_args: Any = None, supervisor: Any = None,
                    timeout_s: float = 30.0) -> StartChildReply:
        """OTP's ``start_child``: a ``ChildSpec``, or args for a simple_one_for_one template.

        The reply has the child's address, or ``error_kind`` already_started / already_present /
        failed (with ``reason``), or neither (the child's start answered ignore). Raises
        ``SpecError`` if the supervisor finds the spec invalid."""
        message = (StartChild(args=dict(spec_or_args)) if isinstance(spec_or_args, dict)
                   else StartChild(spec=spec_or_args))
        reply = self._supervisor_ask(supervisor, message, StartChildReply, timeout_s)
        if reply.error_kind == "invalid":
            raise SpecError(reply.error, child_id=reply.child_id or None)
        return reply

    def restart_child(self, child_id: str, supervisor: Any = None,
                      timeout_s: float = 30.0) -> StartChildReply:
        """OTP's ``restart_child``: start again a child whose spec is kept but is not running.
        Errors (``error_kind``): running, restarting, not_found, simple_one_for_one, failed."""
        return self._supervisor_ask(supervisor, RestartChild(child_id=child_id), StartChildReply,
                                    timeout_s)

    def terminate_child(self, child_id: str, supervisor: Any = None,
                        timeout_s: float = 30.0) -> TerminateChildReply:
        """OTP's ``terminate_child``: answered once the child has stopped; its spec is kept
        (but for temporary and simple_one_for_one children). Error: not_found."""
        return self._supervisor_ask(supervisor, TerminateChild(child_id=child_id),
                                    TerminateChildReply, timeout_s)

    def delete_child(self, child_id: str, supervisor: Any = None,
                     timeout_s: float = 5.0) -> DeleteChildReply:
        """OTP's ``delete_child``: forget a stopped child's spec. Errors: running, restarting,
        not_found, simple_one_for_one."""
        return self._supervisor_ask(supervisor, DeleteChild(child_id=child_id), DeleteChildReply,
                                    timeout_s)

    def which_child(self, child_id: str, supervisor: Any = None,
                    timeout_s: float = 5.0) -> WhichChildReply:
        """OTP's ``which_child``: one child's ``ChildInfo`` (``info``), or error not_found."""
        return self._supervisor_ask(supervisor, WhichChild(child_id=child_id), WhichChildReply,
                                    timeout_s)

    def count_children(self, supervisor: Any = None, timeout_s: float = 5.0) -> ChildCounts:
        """OTP's ``count_children``: specs, active, supervisors, workers."""
        return self._supervisor_ask(supervisor, CountChildren(), ChildCounts, timeout_s)

    def _supervisor_ask(self, supervisor: Any, message: Any, answer: type[_Answer],
                        timeout_s: float) -> _Answer:
        reply = self.ask(self.root if supervisor is None else supervisor, message, timeout_s)
        if not isinstance(reply, answer):
            raise ActorSystemError(f"{supervisor or 'the root'} answered {type(message).__name__} "
                                   f"with {type(reply).__name__}: is it a supervisor?")
        return reply

    def wait_for(self, predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.01,
                 what: str = "condition") -> Any:
        """Poll ``predicate()`` until it returns a truthy value or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} not reached within {timeout_s} s")
            self._require().listen(interval_s)

    def idle(self, seconds: float) -> None:
        """Give the system time to run (simpleSystemBase runs actors only while its owner listens).

        An ``ExitNotice`` of the root arriving meanwhile (it gave up) is kept for ``gone()``."""
        system = self._require()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._saw_root_exit(system.listen(remaining))

    def _saw_root_exit(self, message: Any) -> bool:
        """Keep the root's ``ExitNotice`` if ``message`` holds it (for ``gone()``)."""
        for item in _unbatch(message):
            if isinstance(item, ExitNotice) and item.child_id == self.name:
                self.root_exit = item
                return True
        return False

    def gone(self) -> str | None:
        """Why the system is gone (its root exited or its process died), or None while it runs."""
        if self.root_exit is not None:
            return f"the root supervisor exited: {self.root_exit.reason}"
        if self.base == "multiproc" and self.root_pid and not pid_alive(self.root_pid):
            return f"the root supervisor's process (pid {self.root_pid}) died"
        return None

    def create_actor(self, actor_class: type) -> Any:
        """An actor outside the tree (a test's recorder, a benchmark's probe); dies with the system."""
        return self._require().createActor(actor_class)

    # --- processes ----------------------------------------------------------------------------

    def note_pid(self, pid: int) -> None:
        """Remember the process session of an actor process, to check later that it is gone."""
        try:
            self.session_ids.add(os.getsid(pid))
        except ProcessLookupError:
            pass

    def wait_until_gone(self, timeout_s: float = 10.0) -> list[int]:
        """After shutdown: poll until no process of this system is alive; return what is left."""
        deadline = time.monotonic() + timeout_s
        while (left := self.leftover_processes()) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the OS process table; there is no event to wait on
        return left

    def leftover_processes(self) -> list[int]:
        """PIDs still alive in the process sessions this system's admin created (none after stop)."""
        return processes_in_sessions(self.session_ids - {os.getsid(0)})


class NodeRuntime:
    """A node: a Thespian admin with capabilities that joins a convention (``ptr node start``).

    Children whose requirements its capabilities meet may be placed on it by supervisors on other
    nodes. ``PTR_NODE`` is set before the admin forks, so its actors report this node's name.
    """

    def __init__(self, name: str, join: tuple[str, int], capabilities: dict[str, Any],
                 admin_port: int | None = None) -> None:
        self.name = name
        self.join = join
        self.admin_port = admin_port or free_port()
        self.capabilities = dict(capabilities)
        self.system: ActorSystem | None = None
        self.admin_sid = 0

    def start(self) -> NodeRuntime:
        set_node_name(self.name)
        caps = {**self.capabilities, "Admin Port": self.admin_port, "ptr.node": self.name,
                "Convention Address.IPv4": self.join}
        zombies_before = zombie_children()
        try:
            self.system = ActorSystem(BASES["multiproc"], capabilities=caps,
                                      logDefs=thespian_log_defs(logging.CRITICAL),
                                      transientUnique=True)
            reap_zombie_children(zombies_before)
            probe = self.system.createActor(_SessionProbe)
            pid = self.system.ask(probe, "pid", 10)
            self.admin_sid = os.getsid(int(pid))
            self.system.tell(probe, ActorExitRequest())
        except (ActorSystemException, TypeError, ValueError) as exc:
            self.shutdown()
            raise ActorSystemError(f"node {self.name} could not start: {exc}") from exc
        return self

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)  # a node has nothing to drive: its admin runs in its own process

    def shutdown(self) -> None:
        system, self.system = self.system, None
        if system is not None:
            system.shutdown()

    def leftover_processes(self) -> list[int]:
        return processes_in_sessions({self.admin_sid}) if self.admin_sid else []


class _SessionProbe(ActorTypeDispatcher):
    """Answers its pid, so a node learns its admin's session (to find its processes later)."""

    def receiveMsg_str(self, msg: str, sender: Any) -> None:
        self.send(sender, os.getpid())


def _addressed(address: Any, message: Any) -> tuple[Any, Any]:
    """A light actor is reached through its host, in a one-item batch."""
    if type(address) is LightAddress:
        return address.host, LightBatch([(address.lid, None, message)])
    return address, message


def _unbatch(message: Any) -> list[Any]:
    if message is None:
        return []
    if type(message) is LightBatch:
        return [item for _lid, _sender, item in message.items]
    return [message]


@contextmanager
def running(spec: SupervisorSpec, **kwargs: Any) -> Iterator[ActorRuntime]:
    """``with running(spec, base="multiproc") as rt:`` starts the tree and always stops it."""
    runtime = ActorRuntime(spec, **kwargs)
    with runtime:
        yield runtime
