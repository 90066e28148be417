"""System definitions: settings from defaults, a TOML file and flags; trees validated when built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import ConfigError, SpecError
from supervisors.spec import ChildSpec, SupervisorSpec
from systems import catalog
from systems.ping import SYSTEM as PING
from systems.spec import SystemSettings, SystemSpec

ROOT = Path(__file__).resolve().parents[2]


def edge_tree(settings: SystemSettings) -> SupervisorSpec:
    inner = SupervisorSpec(children=[ChildSpec("gateway", ScriptedActor,
                                               requirements={"role": "edge"})])
    return SupervisorSpec(children=[ChildSpec("core", ScriptedActor), inner.as_child("edges")])


EDGY = SystemSpec(name="edgy", summary="needs an edge node", build_tree=edge_tree)


def test_settings_layer_defaults_then_toml_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "ptr.toml"
    config.write_text('[ping]\ninterval_s = 2.0\ndata_dir = "/srv/ptr"\n')
    settings = PING.settings(config, {"interval_s": 0.25})
    assert settings.interval_s == 0.25, "a flag beats the file"
    assert settings.data_dir == "/srv/ptr", "the file beats the default"
    assert settings.resolved_storage_url("ping") == "sqlite:////srv/ptr/ping.db"


def test_a_bad_setting_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        PING.settings(None, {"interval_s": "soon"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[ping\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        PING.settings(bad)


def test_placement_is_checked_against_the_nodes_when_given() -> None:
    assert EDGY.tree(nodes=[{"role": "edge"}, {}])
    with pytest.raises(SpecError) as err:
        EDGY.tree(nodes=[{"role": "core"}])
    assert err.value.child_id == "/edges/gateway"
    assert "placement impossible" in str(err.value)


def test_every_catalogued_system_builds_a_valid_tree() -> None:
    for name, system in catalog.systems().items():
        tree = system.tree()
        assert tree.children, name


def test_unknown_system_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown system"):
        catalog.get("nope")


def test_ptr_bench_runtime_prints_one_json_object() -> None:
    """A smoke run with tiny counts: the command works and reports its figures (speed is judged
    by the real benchmark run, not here)."""
    out = subprocess.run([sys.executable, "-m", "systems.cli", "bench", "runtime", "--json",
                          "--set", "messages=100", "--set", "rounds=1", "--set", "restarts=4",
                          "--set", "observe=true"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, "\n".join(line for line in out.stderr.splitlines()
                                          if "ScriptedCrash" not in line)[-3000:]
    result = json.loads(out.stdout)
    for key in ("plain_thespian_msgs_per_s", "raw_msgs_per_s", "supervised_msgs_per_s",
                "transport_ratio", "overhead_ratio", "restart_p50_ms", "restart_p99_ms",
                "frame_signed_us", "observe_off_msgs_per_s", "observe_on_msgs_per_s"):
        assert result[key] > 0, key
    assert result["observe_throughput_cost"] < 1 and 0 <= result["observer_cpu_share"] < 1
    assert result["processes_left"] == 0
