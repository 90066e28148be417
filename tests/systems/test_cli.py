"""The ``ptr`` command, run as a user runs it: output, exit code, and no process left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]


def ptr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PTR, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_list_names_every_system_with_a_line_each() -> None:
    out = ptr("list")
    assert out.returncode == 0
    assert any(line.startswith("ping ") for line in out.stdout.splitlines())


@pytest.mark.parametrize("base", ["simple", "multiproc"])
def test_run_for_a_while_then_stop_cleanly(base: str) -> None:
    out = ptr("run", "ping", "--base", base, "--for", "1.5", "--set", "interval_s=0.1")
    assert out.returncode == 0, out.stderr
    assert "/ping/pinger" in out.stdout and "/ping/ponger" in out.stdout
    answered = [int(line.split("answered ")[1].split(",")[0])
                for line in out.stdout.splitlines() if "answered" in line]
    assert answered and answered[-1] >= 3, out.stdout
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left")


def test_ctrl_c_stops_the_system_and_leaves_no_process() -> None:
    proc = subprocess.Popen([*PTR, "run", "ping", "--set", "interval_s=0.1"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until it is really running
        if "answered" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped; 0 actor processes left" in rest


@pytest.mark.parametrize("args, message", [
    (["run", "nope"], "unknown system 'nope'"),
    (["run", "ping", "--set", "interval_s=fast"], "invalid setting 'interval_s'"),
    (["run", "ping", "--set", "no_such=1"], "invalid setting 'no_such'"),
    (["run", "ping", "--config", "/nonexistent.toml"], "config file not found"),
    (["bench", "nope"], "unknown benchmark"),
    (["run", "ping", "--players", "3"], "invalid setting 'players'"),
])
def test_user_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    out = ptr(*args)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_a_toml_config_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "ping.toml"
    config.write_text("[ping]\ninterval_s = 0.05\n")
    out = ptr("run", "ping", "--base", "simple", "--for", "1", "--config", str(config))
    assert out.returncode == 0, out.stderr
    answered = [int(line.split("answered ")[1].split(",")[0])
                for line in out.stdout.splitlines() if "answered" in line]
    assert answered[-1] >= 10, "a 50 ms interval gives about 20 pings a second"


def test_run_game_simulate_players_starts_that_many_bots_and_reports_them() -> None:
    out = ptr("run", "game", "--simulate", "--players", "4", "--for", "8", "--set",
              "hash_profile=fast", "--set", "room_size=2", "--set", "fill_wait_s=0.2",
              "--set", "lobby_port=0", "--set", "udp_port=0", timeout=120)
    assert out.returncode == 0, out.stderr
    summary = next(line for line in out.stdout.splitlines() if line.startswith("game: bots"))
    assert summary.startswith("game: bots 4 in 2 processes"), summary
    rate = float(summary.split("processes: ")[1].split(" inputs/s")[0].replace(",", ""))
    assert rate > 0, f"the bots played: {summary}"
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left")
