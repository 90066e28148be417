"""Errors a person can act on: each is one exact line on stderr, a non-zero exit code, and no
traceback of ptr's own (an actor's crash log is the actors', not ptr's)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.observed import ObservedRun, observed, wait_until

__all__ = ["observed"]
PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]


def ptr(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run([*PTR, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    return out.stderr.rstrip("\n")


@pytest.mark.parametrize("args, line", [
    (["run", "ping", "--set", "interval_s=0"],
     "ptr: error: invalid setting 'interval_s' = 0 for ping: Input should be greater than 0 "
     "(the settings: ptr run ping --help)"),
    (["run", "ping", "--for", "-1"],
     "ptr: error: argument --for: must be a positive number of seconds, got -1 "
     "(see: ptr run --help)"),
    (["run", "ping", "--for", "0"],
     "ptr: error: argument --for: must be a positive number of seconds, got 0 "
     "(see: ptr run --help)"),
    (["run", "smart-home", "--set", "writer_poll_s=-0.5"],
     "ptr: error: invalid setting 'writer_poll_s' = -0.5 for smart-home: Input should be greater "
     "than 0 (the settings: ptr run smart-home --help)"),
    (["run", "ping", "--observe-port", "70000"],
     "ptr: error: argument --observe-port: takes a port 0-65535, got '70000' "
     "(see: ptr run --help)"),
    (["frobnicate"],
     "ptr: error: argument command: invalid choice: 'frobnicate' (choose from 'list', 'run', "
     "'observe', 'stop', 'inspect', 'top', 'chaos', 'node', 'bench') (see: ptr --help)"),
])
def test_settings_are_checked_against_their_ranges(tmp_path: Path, args: list[str],
                                                   line: str) -> None:
    out = ptr(tmp_path, *args)
    assert out.returncode == 2
    assert one_line(out) == line


def test_run_system_help_lists_every_set_key_with_type_default_and_meaning(tmp_path: Path) -> None:
    out = ptr(tmp_path, "run", "ping", "--help")
    assert out.returncode == 0, out.stderr
    assert "settings of ping (--set KEY=VALUE" in out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines()
             if line.startswith("  ") and "=" in line.split()[0] and " default " in line}
    assert set(lines) == {"data_dir=str", "storage_url=str", "interval_s=float"}
    assert lines["interval_s=float"].split(None, 1)[1] == \
        "default 0.5, > 0: seconds between two pings"
    game = ptr(tmp_path, "run", "game", "--help").stdout
    assert "  tick_hz=float" in game and "default 60.0, > 0 <= 240" in game


def test_version(tmp_path: Path) -> None:
    out = ptr(tmp_path, "--version")
    assert out.returncode == 0 and out.stdout == "ptr 0.1.0\n"


def test_a_port_in_use_names_the_port_its_setting_and_another_instance(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        out = ptr(tmp_path, "run", "ping", "--observe", "--observe-port", str(port), "--for", "5")
    finally:
        holder.close()
    assert out.returncode == 2
    assert one_line(out) == (
        f"ptr: error: port {port} (--observe-port) is in use: another instance may be running; "
        f"stop it, or choose another port with --observe-port")


@pytest.mark.multiproc
def test_a_root_that_gave_up_names_the_child_and_its_last_exit(
        observed: Callable[..., ObservedRun]) -> None:
    run = observed("ping", "--set", "interval_s=0.1", "--allow-chaos")
    wait_until(run.actors, "a first snapshot")
    deadline = time.monotonic() + 60
    while run.proc.poll() is None:  # crash it until the root gives up (3 restarts in 5 s)
        assert time.monotonic() < deadline, "the root never gave up"
        try:
            run.post_fault(kind="crash", target="/ping/ponger")  # 404 while it restarts
        except OSError:
            break  # the system, and its observer, just went away
    _, err = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 3
    last = err.rstrip("\n").splitlines()[-1]
    assert last == (
        "ptr: error: ping is gone: the root supervisor exited: shutdown: "
        "reached_max_restart_intensity (3 restarts in 5 s); 'ponger' exited error: "
        "ChaosInjectedError: chaos: crash injected into /ping/ponger; stopped, "
        "0 actor processes left")
    assert "Whereis" not in err and "systems/cli.py" not in err


def test_a_system_port_in_use_names_its_holder_its_setting_and_another_instance(
        tmp_path: Path) -> None:
    from systems.processes import port_holders
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        cmd = port_holders(port)[0][2][:80]
        out = ptr(tmp_path, "run", "game", "--set", f"lobby_port={port}", "--set", "udp_port=0")
    finally:
        holder.close()
    assert out.returncode == 2
    assert one_line(out) == (
        f"ptr: error: port {port} (lobby_port) is held by pid {os.getpid()} over tcp: {cmd} "
        f"(another instance may be running; stop it, or choose other ports with --set)")


def test_a_port_held_by_someone_unseen_is_found_by_binding_it() -> None:
    from systems.processes import port_taken
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        assert port_taken(port, udp=False) and not port_taken(port, udp=True)
    finally:
        holder.close()
    assert not port_taken(port, udp=False)
