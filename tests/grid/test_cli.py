"""``ptr grid ...``: provisioning from CSV (tokens printed once, stored hashed), revocation, fates,
``ptr grid replay --from OFFSET|TIME`` rewinding the alert group, and the daily job by hand."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from actors.grid import open_log

ROOT = Path(__file__).resolve().parents[2]


def ptr(tmp_path: Path, *words: str) -> str:
    out = subprocess.run([sys.executable, "-m", "systems.cli", "grid", "--set",
                          f"data_dir={tmp_path}", *words], check=False, capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={"PTR_RUN_DIR": str(tmp_path / "run"),
                                                    "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_provision_revoke_fates_and_replay(tmp_path) -> None:
    csv = tmp_path / "sensors.csv"
    csv.write_text("sensor_id,substation,kind,nominal_v\ncable-1,north,cable,230\n"
                   "volt-1,south,voltage,400\n")
    lines = ptr(tmp_path, "provision", str(csv)).splitlines()
    assert lines[0] == "sensor_id,token" and [l.split(",")[0] for l in lines[1:]] == \
        ["cable-1", "volt-1"]
    token = lines[1].split(",")[1]
    assert token not in (tmp_path / "grid.db").read_bytes().decode("latin-1")
    assert ptr(tmp_path, "revoke", "volt-1").strip() == "revoked volt-1"
    assert json.loads(ptr(tmp_path, "fates")) == {}

    log = open_log(f"sqlite:///{tmp_path / 'grid-log.db'}")
    try:
        before = time.time()
        for seq in range(1, 6):
            log.append("grid_readings", [json.dumps({"sensor_id": "cable-1", "seq": seq,
                                                     "ts": before}).encode()])
        log.commit("alerts", "grid_readings", 5)
        assert ptr(tmp_path, "replay", "--from", "3").strip() == "alerts replay from offset 3"
        assert log.committed("alerts", "grid_readings") == 2
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 60))
        assert ptr(tmp_path, "replay", "--from", iso).strip() == "alerts replay from offset 1"
    finally:
        log.close()
