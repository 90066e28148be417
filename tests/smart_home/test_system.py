"""The smart home as a system: its spec and settings, ``ptr run smart-home`` as a user runs it (a
simulated house whose readings and alerts show up), and ``--simulate`` outside the tree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.errors import ConfigError
from protocols.smart_home import GetSimulatorStats
from systems import catalog
from systems.smart_home import SYSTEM, SmartHomeSettings, simulator
from tests.support.smart_home import start_home

ROOT = Path(__file__).resolve().parents[2]


def test_the_catalog_has_smart_home_and_its_default_tree() -> None:
    system = catalog.get("smart-home")
    tree = system.tree(system.settings())
    assert [c.id for c in tree.children] == ["writer", "analyzers", "ingest", "http", "mqtt",
                                             "api", "simulator"]
    analyzers = tree.children[1].supervises
    assert [c.id for c in analyzers.children] == ["heating", "meteo", "motion", "electricity"]
    assert "https://127.0.0.1:8443" in system.edges(system.settings())[0]  # type: ignore[misc]


def test_a_toml_file_describes_another_house_and_bad_settings_name_themselves(tmp_path) -> None:
    config = tmp_path / "home.toml"
    config.write_text('[smart-home]\nmode = "direct"\nmqtt = false\nsimulate = false\n'
                      '[[smart-home.house.sensors]]\nsensor_id = "boiler"\nkind = "heating"\n'
                      'room = "cellar"\n')
    settings = SYSTEM.settings(config)
    assert isinstance(settings, SmartHomeSettings) and settings.mode == "direct"
    tree = SYSTEM.tree(settings)
    assert [c.id for c in tree.children] == ["writer", "analyzers", "ingest", "http", "api"]
    assert [c.id for c in tree.children[1].supervises.children] == ["heating"]
    with pytest.raises(ConfigError, match="'mode'"):
        SYSTEM.settings(overrides={"mode": "fast"})


def test_simulate_outside_the_tree_sends_the_house_over_https(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    house = simulator(home.rt, home.settings)
    try:
        home.wait_stored(8)                       # four sensors, one reading a second each
    finally:
        house.stop()
    assert house.stats().refused == 0


def test_ptr_run_smart_home_shows_readings_and_alerts_arriving(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "systems.cli", "run", "smart-home", "--simulate", "--for", "9",
         "--set", f"data_dir={tmp_path}", "--set", "http_port=0", "--set", "api_port=0",
         "--set", "mqtt_client_id=ptr-test-run", "--set", "mqtt_session_expiry_s=30"],
        capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    for child in ("writer", "analyzers", "ingest", "http", "mqtt", "api", "simulator"):
        assert f"/smart-home/{child} " in out.stdout
    stored = [int(n) for n in re.findall(r"stored (\d+) ", out.stdout)]
    assert len(stored) >= 5 and stored[-1] >= 5 * 21 and stored == sorted(stored), out.stdout
    assert "ALERT circuit-ev:" in out.stdout and "over the circuit limit" in out.stdout, out.stdout
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left")


def test_the_simulator_actor_reports_what_it_sent(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, simulate=True, demo=False)
    home.wait_stored(8)
    # a reading is stored before its HTTP answer reaches the simulator: wait for the answers too
    stats = home.rt.wait_for(lambda: (lambda s: s if s.acked >= 8 else None)(
        home.rt.ask("sh-simulator", GetSimulatorStats(), 5)), timeout_s=20, what="8 acked")
    assert stats.url == home.ingest_url and stats.refused == 0


def test_the_benchmark_runs_small_and_reports_each_figure_beside_its_baseline() -> None:
    from systems.bench.registry import BENCHMARKS
    _, run = BENCHMARKS["smart-home"]
    result = run(rooms=2, seconds=1.5, history_hours=0.01, stats_queries=3)
    assert result["sensors"] == 9 and result["acked"] > 0 and result["acked_not_stored"] == 0
    assert result["stats_day_count"] >= 36                        # the history is in the window
    for figure in ("readings_per_s", "ingest_to_db_p99_ms", "stats_query_24h_ms"):
        assert result[figure] > 0 and figure in result["meets_targets"]
    for ratio in ("readings_ratio", "ingest_to_db_p99_ratio", "stats_query_ratio"):
        assert result[ratio] > 0
