"""``ptr run car --simulate`` as a user runs it, and ``ptr bench car`` at a tiny size (its keys and
that each figure was measured, not its speed: the lead runs the real benchmark alone)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from systems.bench.car import run

pytestmark = pytest.mark.multiproc

ROOT = Path(__file__).resolve().parents[2]


def test_run_car_simulate_feeds_both_holders_and_stores_history(tmp_path: Path) -> None:
    env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run")}
    out = subprocess.run(
        [sys.executable, "-m", "systems.cli", "run", "car", "--simulate", "--for", "4",
         "--set", "udp_port_a=0", "--set", "udp_port_b=0", "--set", f"data_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert "/car/holder-a" in out.stdout and "/car/store" in out.stdout
    lines = [line for line in out.stdout.splitlines() if line.startswith("car: a: ")]
    assert lines, out.stdout
    last = lines[-1]
    applied = [int(n.replace(",", "")) for n in re.findall(r"\b[ab]: ([\d,]+) applied", last)]
    assert len(applied) == 2 and min(applied) > 1000, last
    assert "dropped 0" in last and "alerts 0 active" in last, last
    assert re.search(r"speed km/h \d+ \(sensor-\d+, \d+ ms\)", last), last
    stored = re.search(r"history stored ([\d,]+)", last)
    assert stored is not None and int(stored.group(1).replace(",", "")) > 0, last
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left")


def test_bench_car_reports_every_figure_beside_its_bare_baseline() -> None:
    result = run(signals=14, seconds=1.0, failovers=2, kill_window_s=1.2)
    for key in ("updates_per_s", "sensor_to_subscriber_p99_ms", "failover_ms",
                "subscriber_gap_ms", "stored_per_s", "bare_updates_per_s",
                "bare_sensor_to_subscriber_p99_ms", "updates_ratio_vs_bare"):
        assert key in result, key
    assert result["updates_per_s"] > 1000 and result["bare_updates_per_s"] > 1000
    assert result["stored_per_s"] > 0 and result["failovers_measured"] >= 1
    assert 15 <= result["failover_ms"] < 1000, "not before the deadline (20 ms after the first "\
        "missed datagram, give or take the holder's and the sender's scheduling)"
    assert 0 < result["subscriber_gap_ms"] < 1000
    assert result["dropped"] == 0
