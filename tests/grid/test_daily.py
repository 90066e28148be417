"""The daily job on SQLite and on a real PostgreSQL: catch-up of missed days in order, a second run
changes nothing, counts verified before the log drops what was copied (never past a consumer
group's position), and a SIGKILL mid-copy followed by a re-run stores every reading exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from actors.grid import fates, open_log
from actors.grid.daily import DailyJob
from actors.storage import DurableLog, make_engine
from tests.support.services import POSTGRES, require_service

ROOT = Path(__file__).resolve().parents[2]
DAY_S = 86400.0
MONDAY = 1_764_547_200.0  # 2025-12-01 00:00 UTC


def fill(log: DurableLog, per_day: dict[float, int], sensors: int = 5) -> int:
    """Append readings accepted on each day (``received_at`` = day + a few seconds)."""
    seqs = {f"s{i}": 0 for i in range(sensors)}
    total = 0
    for day_start, count in per_day.items():
        items = []
        for n in range(count):
            sid = f"s{n % sensors}"
            seqs[sid] += 1
            payload = {"sensor_id": sid, "seq": seqs[sid], "ts": day_start + n,
                       "voltage_v": 230.0, "status": "ok", "gateway": f"gw-{n % 2 + 1}",
                       "received_at": day_start + n}
            items.append((sid, seqs[sid], json.dumps(payload).encode()))
        for start in range(0, len(items), 2000):
            log.append_sequenced("grid_readings", items[start:start + 2000])
        total += count
    return total


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grid.db'}"
        return
    require_service(*POSTGRES)
    schema = f"grid_t{uuid.uuid4().hex[:10]}"
    admin = make_engine("postgresql://127.0.0.1:5432/test")
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql://127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def count(engine: sa.Engine, day: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(
            f"SELECT count(*) FROM grid_readings_{day.replace('-', '')}")).scalar_one())


def test_catch_up_is_idempotent_and_truncates_only_what_was_copied(database_url, tmp_path) -> None:
    engine = make_engine(database_url)
    log = open_log(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        fill(log, {MONDAY: 300, MONDAY + DAY_S: 200, MONDAY + 2 * DAY_S: 100,
                   MONDAY + 3 * DAY_S: 50})
        log.commit("alerts", "grid_readings", 550)  # the alert consumer is behind the job
        job = DailyJob(log, engine, batch=64, retain_for=("alerts",))
        now = MONDAY + 3 * DAY_S + 3600  # Thursday 01:00: Monday to Wednesday are missed days
        reports = job.run(now=now)
        assert [(r.day, r.log_count, r.db_count, r.verified) for r in reports] == [
            ("2025-12-01", 300, 300, True), ("2025-12-02", 200, 200, True),
            ("2025-12-03", 100, 100, True)]
        assert reports[-1].truncated_before == 551  # not past the alert group's offset
        assert log.read("grid_readings", 1, 1)[0].offset == 551
        assert [count(engine, d) for d in ("2025-12-01", "2025-12-02", "2025-12-03")] == \
            [300, 200, 100]
        assert fates(engine)["stored"] == 600
        assert fates(engine, sensor_id="s0", gateway="gw-1")["stored"] == 30 + 20 + 10
        # a second run changes nothing: no report, same rows, same counts
        assert job.run(now=now) == []
        assert fates(engine)["stored"] == 600 and count(engine, "2025-12-03") == 100
        # Thursday is not copied until it is over
        assert log.committed("daily", "grid_readings") == 600
        friday = job.run(now=now + DAY_S)
        assert [(r.day, r.verified) for r in friday] == [("2025-12-04", True)]
        assert fates(engine)["stored"] == 650 and count(engine, "2025-12-04") == 50
    finally:
        log.close()
        engine.dispose()


_COPY = """
import sys
from actors.grid import open_log
from actors.grid.daily import DailyJob
from actors.storage import make_engine
log = open_log(sys.argv[1])
DailyJob(log, make_engine(sys.argv[2]), batch=20).run(now=float(sys.argv[3]))
"""


def test_a_sigkill_mid_copy_then_a_rerun_stores_each_reading_once(database_url, tmp_path) -> None:
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    log = open_log(log_url)
    engine = make_engine(database_url)
    try:
        total = fill(log, {MONDAY: 20_000})
        child = subprocess.Popen([sys.executable, "-c", _COPY, log_url, database_url,
                                  str(MONDAY + DAY_S + 60)], cwd=ROOT)
        try:
            def copying() -> bool:
                try:
                    return count(engine, "2025-12-01") > 0
                except sa.exc.SQLAlchemyError:  # the table does not exist yet
                    return False
            deadline_wait(copying, child)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        partial = count(engine, "2025-12-01")
        assert 0 < partial < total  # killed mid-copy
        reports = DailyJob(log, engine, batch=500).run(now=MONDAY + DAY_S + 60)
        assert [(r.log_count, r.db_count, r.verified) for r in reports] == [(total, total, True)]
        with engine.connect() as connection:
            distinct = connection.execute(sa.text(
                "SELECT count(*) FROM (SELECT DISTINCT sensor_id, seq FROM grid_readings_20251201)"
                " AS d")).scalar_one()
        assert distinct == total == count(engine, "2025-12-01")
    finally:
        log.close()
        engine.dispose()


def deadline_wait(predicate, child, timeout_s: float = 30) -> None:
    import time
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert child.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "the job never started copying"
        time.sleep(0.005)  # polling the database; nothing to wait on
