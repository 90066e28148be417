"""Whether an OS process is still there: for supervisors watching processes they did not fork."""

from __future__ import annotations

import os
import select

__all__ = ["ProcessWatch", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a live (non-zombie) process on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ProcessWatch:
    """One process, watched through a pidfd where Linux has one (immune to pid reuse)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def alive(self) -> bool:
        if self.fd is not None:
            return not select.select([self.fd], [], [], 0)[0]  # readable once it has exited
        return pid_alive(self.pid)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
