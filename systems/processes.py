"""Reading the OS process table, to prove that an actor system left no process behind.

Thespian's admin calls ``setsid`` and double-forks: it and every actor process it forks share one
session, and once detached their parent is init. Both facts make leftovers easy to find.
"""

from __future__ import annotations

import os
import socket
import signal
from collections.abc import Iterator

from actors.os_process import pid_alive

__all__ = ["kill_processes", "orphaned_python_processes", "orphans_in_sessions", "pid_alive",
           "port_holders", "port_taken",
           "processes_in_sessions", "reap_zombie_children", "zombie_children"]


def _processes() -> Iterator[tuple[int, str, int, int, bytes]]:
    """(pid, state, ppid, session id, cmdline) of every process that is still readable."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                after = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        yield int(entry), after[0], int(after[1]), int(after[3]), cmd


def processes_in_sessions(sids: set[int]) -> list[int]:
    """Live (non-zombie) processes in the given sessions."""
    return [pid for pid, state, _, sid, _ in _processes() if sid in sids and state != "Z"]


def orphaned_python_processes(marker: bytes = b"") -> list[int]:
    """Live Python processes re-parented to init (how a leaked Thespian admin looks: a fork of a
    Python program, so its first argument is the interpreter; a wrapper such as ``timeout python``
    is not one)."""
    me = os.getpid()
    return [pid for pid, state, ppid, _, cmd in _processes()
            if pid != me and state != "Z" and ppid == 1 and b"python" in cmd.split(b"\0", 1)[0]
            and marker in cmd]


def kill_processes(pids: list[int]) -> list[int]:
    """SIGKILL each of ``pids``; return those that were still there to kill."""
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def zombie_children() -> set[int]:
    me = os.getpid()
    return {pid for pid, state, ppid, _, _ in _processes() if ppid == me and state == "Z"}


def reap_zombie_children(known: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Collect this process's exited children that nobody waits for (Thespian's first fork of its
    admin exits at once and is never joined), except those in ``known`` (zombies that were there
    before: a ``subprocess.Popen`` someone will wait on keeps its exit status)."""
    reaped = []
    for pid in zombie_children() - set(known):
        try:
            os.waitpid(pid, os.WNOHANG)
            reaped.append(pid)
        except ChildProcessError:
            pass
    return reaped


def port_taken(port: int, udp: bool = False) -> bool:
    """Whether binding ``port`` on every interface fails now: something listens there, even a
    process of another user that ``port_holders`` cannot name."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def port_holders(port: int) -> list[tuple[int, str, str]]:
    """(pid, protocol, command line) of each process with a TCP listener or a UDP socket on
    ``port``, from ``/proc/net`` and the processes' open sockets (root sees every process)."""
    inodes: dict[str, str] = {}
    for proto, table in (("tcp", "tcp"), ("tcp", "tcp6"), ("udp", "udp"), ("udp", "udp6")):
        try:
            with open(f"/proc/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local_port = int(cols[1].rsplit(":", 1)[1], 16)
                    if local_port == port and (proto == "udp" or cols[3] == "0A"):  # 0A: LISTEN
                        inodes[f"socket:[{cols[9]}]"] = proto
        except OSError:
            continue
    found: list[tuple[int, str, str]] = []
    if not inodes:
        return found
    for pid, _state, _ppid, _sid, cmd in _processes():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in inodes:
                found.append((pid, inodes[link], cmd.replace(b"\0", b" ").decode(errors="replace").strip()))
                break
    return found


def orphans_in_sessions(sids: set[int]) -> list[int]:
    """Live processes of these sessions re-parented to init, but for each session's first process
    (Thespian's admin, detached on purpose): an actor whose parent died without taking it along."""
    first: dict[int, tuple[int, int]] = {}
    adopted = []
    for pid, state, ppid, sid, _ in _processes():
        if sid not in sids or state == "Z":
            continue
        started = _start_time(pid)
        if sid not in first or started < first[sid][0]:
            first[sid] = (started, pid)
        if ppid == 1:
            adopted.append(pid)
    leaders = {pid for _, pid in first.values()}
    return [pid for pid in adopted if pid not in leaders]


def _start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0
