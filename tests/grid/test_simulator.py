"""``ptr run grid --simulate`` as a user runs it: simulated sensors over HTTPS and MQTT reach the log,
bad credentials are refused and counted by reason, retries counted as duplicates, incidents raise
alerts of every reading rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

from actors.grid import stored_alerts
from actors.storage import make_engine
from tests.support.services import MOSQUITTO, require_service

ROOT = Path(__file__).resolve().parents[2]


def test_ptr_run_grid_simulate(tmp_path) -> None:
    require_service(*MOSQUITTO)
    settings = [f"data_dir={tmp_path}", "port=0", "sim_sensors=200", "sim_period_s=1",
                "sim_incident_after_s=1", f"mqtt_client_id=ptr-test-{uuid.uuid4().hex[:6]}",
                f"mqtt_prefix=ptr-test/grid-{uuid.uuid4().hex[:6]}", "alert_poll_s=0.1"]
    out = subprocess.run([sys.executable, "-m", "systems.cli", "run", "grid", "--simulate",
                          "--for", "6", *[w for s in settings for w in ("--set", s)]],
                         check=False, capture_output=True, text=True, timeout=90, cwd=ROOT,
                         env={"PTR_RUN_DIR": str(tmp_path / "run"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left"), out.stdout
    accepted = [int(n) for n in re.findall(r"gw-1 accepted (\d+)", out.stdout)]
    assert accepted == sorted(accepted) and accepted[-1] > 0, out.stdout
    fates = json.loads(subprocess.run(
        [sys.executable, "-m", "systems.cli", "grid", "--set", f"data_dir={tmp_path}", "fates"],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT).stdout)
    assert fates["accepted"] >= 4 * 200, fates  # about 200 a second for 5 s
    for reason in ("unknown_sensor", "wrong_token", "revoked"):
        assert fates[f"refused_{reason}"] > 0, fates
    engine = make_engine(f"sqlite:///{tmp_path / 'grid.db'}")
    try:
        rules = {a.rule for a in stored_alerts(engine)}
    finally:
        engine.dispose()
    assert {"over_temperature", "voltage_sag", "voltage_swell", "over_current"} <= rules
