"""``ptr inspect`` and ``ptr chaos`` against a system that ``ptr run`` keeps running, as a user would
drive them from a second terminal; and the same faults through the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols.supervision import ExitKind
from supervisors.spec import Strategy
from systems.chaos import Chaos
from systems.processes import processes_in_sessions
from tests.support.harness import ROOT_SPEC, Harness, worker

PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.multiproc


@pytest.fixture
def running_ping(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.Popen([*PTR, "run", "ping", "--set", "interval_s=0.05"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "answered" in line:
            break
    yield env
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped; 0 actor processes left" in out


def ptr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PTR, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def tree(env: dict[str, str]) -> dict[str, dict]:
    out = ptr(env, "inspect", "--json")
    assert out.returncode == 0, out.stderr
    return {a["path"]: a for a in json.loads(out.stdout)["actors"]}


def wait_tree(env: dict[str, str], predicate, what: str) -> dict[str, dict]:
    import time
    deadline = time.monotonic() + 20
    while True:
        actors = tree(env)
        if predicate(actors):
            return actors
        assert time.monotonic() < deadline, f"{what}: {actors}"


def test_inspect_shows_every_actor_with_its_process_and_counters(running_ping) -> None:
    actors = tree(running_ping)
    assert set(actors) == {"/ping", "/ping/ponger", "/ping/pinger"}
    ponger = actors["/ping/ponger"]
    assert ponger["actor_class"] == "Ponger" and ponger["status"] == "running"
    assert ponger["pid"] > 0 and ponger["pid"] != actors["/ping/pinger"]["pid"]
    assert ponger["handled"] >= 1 and ponger["restarts"] == 0
    assert actors["/ping"]["restart_budget_left"] == 3
    text = ptr(running_ping, "inspect")
    assert text.returncode == 0 and "ponger" in text.stdout and "Pinger" in text.stdout


def test_chaos_crash_and_kill_restart_the_target_and_inspect_shows_why(running_ping) -> None:
    before = tree(running_ping)["/ping/ponger"]["pid"]
    out = ptr(running_ping, "chaos", "crash", "/ping/ponger")
    assert out.returncode == 0, out.stderr
    actors = wait_tree(running_ping, lambda a: a["/ping/ponger"]["restarts"] == 1
                       and a["/ping/ponger"]["status"] == "running", "ponger restarted")
    assert "ChaosInjectedError" in actors["/ping/ponger"]["last_exit"]
    assert actors["/ping/ponger"]["pid"] != before
    assert actors["/ping"]["restart_budget_left"] == 2

    out = ptr(running_ping, "chaos", "kill", "/ping/pinger")
    assert out.returncode == 0, out.stderr
    actors = wait_tree(running_ping, lambda a: a["/ping/pinger"]["restarts"] == 1
                       and a["/ping/pinger"]["status"] == "running", "pinger restarted")
    assert actors["/ping/pinger"]["last_exit"].startswith("killed")


def test_chaos_delay_and_drop_slow_or_silence_an_actor_for_a_while(running_ping) -> None:
    assert ptr(running_ping, "chaos", "delay", "/ping/ponger", "30", "--for", "1").returncode == 0
    assert ptr(running_ping, "chaos", "drop", "/ping/ponger", "--for", "1").returncode == 0
    handled = tree(running_ping)["/ping/ponger"]["handled"]
    wait_tree(running_ping, lambda a: a["/ping/ponger"]["handled"] > handled + 5,
              "ponger answers again once the faults end")


@pytest.mark.parametrize("args, message", [
    (["chaos", "crash", "/ping/nope"], "no child 'nope' under /ping"),
    (["chaos", "crash", "/other/x"], "not in this system"),
    (["chaos", "delay", "/ping/ponger"], "delay takes PATH MS --for SECONDS"),
    (["chaos", "kill-node", "ghost"], "no node named 'ghost'"),
])
def test_chaos_mistakes_are_one_line_errors(running_ping, args, message) -> None:
    out = ptr(running_ping, *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_inspect_with_nothing_running_says_so(tmp_path: Path) -> None:
    out = ptr({**os.environ, "PTR_RUN_DIR": str(tmp_path)}, "inspect")
    assert out.returncode == 2
    assert "nothing is running" in out.stderr


def test_the_python_chaos_api_injects_the_same_faults(ptr_runtime, chaos) -> None:
    rt = ptr_runtime(ROOT_SPEC, base="multiproc")
    h = Harness(rt)
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    chaos = chaos(rt)
    assert isinstance(chaos, Chaos)
    old = chaos.kill("/root/sut/a")
    fresh = h.wait_restarted("a", old)
    assert fresh.last_exit.exit_kind is ExitKind.KILLED
    old = chaos.crash("/root/sut/b")
    assert h.wait_restarted("b", old).last_exit.error_type == "ChaosInjectedError"
    assert processes_in_sessions(rt.session_ids), "the system still runs"
