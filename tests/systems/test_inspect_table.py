"""``ptr inspect`` as a table with a header, ``--watch`` redrawing in place, one "unknown", nodes
as data; run files in a per-user directory; ``ptr observe`` finds the running system's observer."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from protocols.errors import ActorSystemError
from systems import runfile
from systems.cli import CLEAR_SCREEN
from systems.inspect import ActorView, NodeView, as_json, render
from tests.support.observed import PTR, ROOT, ObservedRun, observed, wait_until

__all__ = ["observed"]

VIEWS = [ActorView(path="/s", actor_class="RootSupervisor", status="running", node="n1", pid=10,
                   restart_budget_left=3, handled=7, is_supervisor=True),
         ActorView(path="/s/rooms", actor_class="Supervisor", status="running", node="n1",
                   pid=11, depth=1, restart_budget_left=2, is_supervisor=True),
         ActorView(path="/s/rooms/r1", actor_class="Room", status="running", depth=2, handled=4,
                   queued=0, light_host="host-a"),
         ActorView(path="/s/rooms/…", actor_class="", status="", depth=2, more=120)]
NODES = [NodeView(name="edge-1", status="up", capabilities={"role": "edge", "zone": "b"})]


def test_the_table_has_a_header_and_one_unknown() -> None:
    lines = render(VIEWS, NODES).splitlines()
    assert lines[0].split() == ["ACTOR", "CLASS", "STATUS", "NODE", "PID", "RESTARTS", "BUDGET",
                                "HANDLED", "QUEUED", "LAST", "EXIT"]
    assert lines[1].split() == ["s", "RootSupervisor", "running", "n1", "10", "0", "3", "7", "-",
                                "-"]
    assert lines[3].split() == ["r1", "Room", "running", "-", "-", "0", "-", "4", "0", "-"]
    assert lines[3].startswith("    r1")  # the tree, by indentation
    assert lines[4].strip() == "… 120 more"
    assert lines[-2].split() == ["NODE", "STATUS", "CAPABILITIES"]
    assert lines[-1].split() == ["edge-1", "up", "role=edge", "zone=b"]


def test_json_says_unknown_as_null_everywhere_and_nodes_as_data() -> None:
    data = json.loads(json.dumps(as_json(VIEWS, NODES)))
    room = data["actors"][2]
    assert room["pid"] is None and room["node"] == "" and room["restart_budget_left"] is None
    assert data["actors"][0]["queued"] is None and room["queued"] == 0
    assert data["nodes"] == [{"name": "edge-1", "status": "up", "lost_at": None,
                              "capabilities": {"role": "edge", "zone": "b"}}]


def test_run_files_live_in_a_per_user_directory(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("PTR_RUN_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert runfile.run_dir() == tmp_path / "ptr"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    assert runfile.run_dir().name == f"ptr-{os.getuid()}"
    monkeypatch.setenv("PTR_RUN_DIR", str(tmp_path / "mine"))
    for name in ("alpha", "beta"):
        runfile.RunInfo(kind="system", name=name, admin_port=1, pid=os.getpid(), admin_sid=0,
                        node="n").write()
    assert oct((tmp_path / "mine").stat().st_mode & 0o777) == "0o700"
    with pytest.raises(ActorSystemError, match="several systems are running: choose one with "
                                               "--system alpha or beta"):
        runfile.find_system(None)
    assert runfile.find_system("beta").name == "beta"


@pytest.mark.multiproc
def test_watch_redraws_in_place_and_observe_finds_the_observer(
        observed: Callable[..., ObservedRun]) -> None:
    run = observed("ping", "--set", "interval_s=0.1")
    found = subprocess.run([*PTR, "observe"], cwd=ROOT, env=run.env, capture_output=True,
                           text=True, timeout=60)
    assert found.returncode == 0 and found.stdout == f"observer: {run.url}\n"
    controller, terminal = pty.openpty()
    watch = subprocess.Popen([*PTR, "inspect", "--watch"], cwd=ROOT, env=run.env,
                             stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    screen = b""
    try:
        deadline = time.monotonic() + 30
        while screen.count(CLEAR_SCREEN.encode()) < 2:
            assert time.monotonic() < deadline, screen
            if select.select([controller], [], [], 1.0)[0]:
                screen += os.read(controller, 65536)
    finally:
        watch.terminate()
        watch.wait(30)
        os.close(controller)
    frames = screen.decode().split(CLEAR_SCREEN)[1:]
    assert frames[0].lstrip().startswith("ACTOR") and "ponger" in frames[0]
    assert frames[0].strip().splitlines()[0] == frames[1].strip().splitlines()[0]


@pytest.mark.multiproc
def test_ptr_observe_serves_a_system_started_without_it(tmp_path: Path,
                                                        observed: Callable[..., ObservedRun]
                                                        ) -> None:
    run = observed("ping")
    (Path(run.env["PTR_RUN_DIR"]) / "ping.json").write_text(json.dumps(
        {**json.loads((Path(run.env["PTR_RUN_DIR"]) / "ping.json").read_text()),
         "observer": ""}))  # as if started without --observe
    proc = subprocess.Popen([*PTR, "observe", "--port", "0", "--for", "20"], cwd=ROOT,
                            env=run.env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        import urllib.request

        def actors() -> list[str]:
            with urllib.request.urlopen(url + "api/snapshot", timeout=10) as response:
                return [a["path"] for a in json.loads(response.read()).get("actors", [])]
        assert wait_until(actors, "a snapshot") == ["/ping", "/ping/ponger", "/ping/pinger"]
    finally:
        proc.terminate()
        proc.wait(30)
