"""Run files: how ``ptr inspect`` and ``ptr chaos`` find a system that ``ptr run`` started.

``ptr run`` writes ``SYSTEM.json`` in ``run_dir()`` (``$PTR_RUN_DIR``, else a per-user directory)
with its admin port, its process id and the root's address (pickled: Thespian addresses cannot be
rebuilt from text), and removes it when it stops. ``ptr node start`` writes ``node-NAME.json`` the same way.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protocols.errors import ActorSystemError
from systems.processes import pid_alive, processes_in_sessions


def run_dir() -> Path:
    """``$PTR_RUN_DIR``, else a per-user runtime directory (``$XDG_RUNTIME_DIR/ptr``, or
    ``/tmp/ptr-UID``), so ``ptr inspect`` finds a system from any directory."""
    if os.environ.get("PTR_RUN_DIR"):
        return Path(os.environ["PTR_RUN_DIR"])
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "ptr"
    return Path(tempfile.gettempdir()) / f"ptr-{os.getuid()}"


@dataclass(frozen=True)
class RunInfo:
    kind: str            # "system" or "node"
    name: str
    admin_port: int
    pid: int             # the ptr process that owns the admin
    admin_sid: int       # the admin's session: every process of that actor system is in it
    node: str
    root: str = ""       # base64 pickle of the root's address (systems only)
    cookie: str = ""     # the system's frame cookie (hex): the file is readable by its owner only
    chaos: bool = False  # started with --allow-chaos: observers may inject faults
    observer: str = ""   # the URL of its web observer (ptr run --observe)

    @property
    def path(self) -> Path:
        return run_dir() / (f"node-{self.name}.json" if self.kind == "node" else f"{self.name}.json")

    def root_address(self) -> Any:
        return pickle.loads(base64.b64decode(self.root))  # noqa: S301 (our own file)

    def write(self) -> Path:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(self)))
        tmp.replace(self.path)
        return self.path

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        """Its ptr process runs."""
        return pid_alive(self.pid)

    def processes(self) -> list[int]:
        """The live processes of its actor system (its admin's session)."""
        return processes_in_sessions({self.admin_sid}) if self.admin_sid else []


def encode_address(address: Any) -> str:
    return base64.b64encode(pickle.dumps(address)).decode()


def read_all(kind: str | None = None) -> list[RunInfo]:
    """Run files of live systems. One whose ptr process and actor processes are all gone is
    removed; one whose actor processes outlived their ptr process is kept, for ``ptr stop``."""
    found: list[RunInfo] = []
    if not run_dir().is_dir():
        return found
    for path in sorted(run_dir().glob("*.json")):
        try:
            info = RunInfo(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            continue
        if not info.alive and not info.processes():
            path.unlink(missing_ok=True)
            continue
        if kind is None or info.kind == kind:
            found.append(info)
    return found


def find_system(name: str | None) -> RunInfo:
    systems = read_all("system")
    if name is not None:
        systems = [s for s in systems if s.name == name]
    if not systems:
        raise ActorSystemError(f"nothing is running{' as ' + name if name else ''} "
                               f"(no run file in {run_dir()}); start one with: ptr run SYSTEM")
    if len(systems) > 1:
        raise ActorSystemError("several systems are running: choose one with --system "
                               + " or ".join(s.name for s in systems))
    return systems[0]


def find_node(name: str) -> RunInfo:
    for info in read_all("node"):
        if info.name == name:
            return info
    raise ActorSystemError(f"no node named {name!r} is running here (no run file in {run_dir()})")
