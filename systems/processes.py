"""Reading the OS process table, to prove that an actor system left no process behind.

Thespian's admin calls ``setsid`` and double-forks: it and every actor process it forks share one
session, and once detached their parent is init. Both facts make leftovers easy to find.
"""

from __future__ import annotations

import os
from collections.abc import Iterator


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
    """Live Python processes re-parented to init (how a leaked Thespian admin looks)."""
    me = os.getpid()
    return [pid for pid, state, ppid, _, cmd in _processes()
            if pid != me and state != "Z" and ppid == 1 and b"python" in cmd and marker in cmd]
