"""The grid as a system of processes: gateways sharing one port (SO_REUSEPORT), a gateway killed
with SIGKILL mid-stream while sensors keep sending (every acknowledged reading is in the log, and
after the daily job in the database, exactly once), and the alert consumer resuming from its
committed offset after a restart."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actors.grid import open_log, stored_alerts
from actors.grid.daily import DailyJob
from protocols.grid import CheckAlertsNow, ConsumerStats, GatewayStats, GetGatewayStats
from systems.grid import ALERTS, SYSTEM, GridSettings, gateway_name
from systems.runtime import free_port
from tests.support.grid import log_keys, make_place, post, reading


def start(make_runtime: Any, tmp_path: Path, **overrides: Any) -> tuple[Any, GridSettings, Any]:
    place = make_place(tmp_path, sensors=6)
    values = {"data_dir": str(tmp_path), "port": free_port(), "gateways": 2, "mqtt": False,
              **overrides}
    settings = SYSTEM.settings(overrides=values)
    assert isinstance(settings, GridSettings)
    rt = make_runtime(SYSTEM.tree(settings), base="multiproc", name="grid")
    return rt, settings, place


def gateway_stats(rt: Any, index: int) -> GatewayStats:
    return rt.wait_for(lambda: _ask(rt, gateway_name(index)), 20, what=f"gateway {index}")


def _ask(rt: Any, name: str) -> GatewayStats | None:
    try:
        return rt.ask(name, GetGatewayStats(), 2)
    except Exception:  # restarting: ask again until the deadline  # noqa: BLE001
        return None


class Sensor(threading.Thread):
    """Sends its readings in order, each batch after the last one's answer; retries on a refused
    connection or a reset (a killed gateway); remembers what was acknowledged."""

    def __init__(self, url: str, sensor_id: str, token: str, context: Any, batches: int) -> None:
        super().__init__(daemon=True)
        self.url, self.sensor_id, self.token, self.context = url, sensor_id, token, context
        self.batches = batches
        self.acked: list[int] = []
        self.gateways: Counter[str] = Counter()
        self.retries = 0

    def run(self) -> None:
        seq = 1
        for _ in range(self.batches):
            batch = [reading(self.sensor_id, s) for s in range(seq, seq + 5)]
            while True:
                try:
                    answer = post(self.url, batch, sensor_id=self.sensor_id, token=self.token,
                                  context=self.context, timeout_s=10)
                except OSError:
                    self.retries += 1
                    continue
                if answer.status == 200:
                    break
                self.retries += 1
            self.acked.extend(range(seq, seq + 5))
            self.gateways[answer.body["gateway"]] += 1
            seq += 5


def test_two_gateways_share_a_port_and_a_sigkill_loses_no_acknowledged_reading(
        make_runtime, tmp_path) -> None:
    rt, settings, place = start(make_runtime, tmp_path)
    stats = [gateway_stats(rt, i) for i in (1, 2)]
    assert stats[0].url == stats[1].url and stats[0].pid != stats[1].pid
    url = stats[0].url
    sensors = [Sensor(url, sid, token, place.context(), 150)
               for sid, token in place.tokens.items()]
    for sensor in sensors:
        sensor.start()
    # while every sensor streams (a few batches acknowledged, most to come), kill gateway 1
    rt.wait_for(lambda: all(len(s.acked) >= 15 for s in sensors), 20, what="a few acks each")
    os.kill(stats[0].pid, signal.SIGKILL)
    assert all(s.is_alive() for s in sensors), "the kill came after the stream"
    for sensor in sensors:
        sensor.join(60)
        assert not sensor.is_alive()
    restarted = gateway_stats(rt, 1)
    assert restarted.pid != stats[0].pid
    served = Counter()
    for sensor in sensors:
        served.update(sensor.gateways)
    assert set(served) == {"gw-1", "gw-2"}  # the kernel spread connections over both

    log = open_log(settings.log())
    try:
        keys = log_keys(log)
        assert len(keys) == len(set(keys))  # nothing twice
        for sensor in sensors:
            stored = [seq for sid, seq in keys if sid == sensor.sensor_id]
            assert stored == sorted(stored)  # per-sensor order
            assert set(sensor.acked) <= set(stored)  # every acknowledged reading
        reports = DailyJob(log, place.engine).run(until_day="2999-12-31", now=4e9)
    finally:
        log.close()
    assert [r.verified for r in reports] == [True] * len(reports) and reports
    with place.engine.connect() as connection:
        rows = []
        for report in reports:
            table = f"grid_readings_{report.day.replace('-', '')}"
            rows += list(connection.execute(sa.text(f"SELECT sensor_id, seq FROM {table}")))
    assert sorted(map(tuple, rows)) == sorted(keys)  # in the database exactly once
    for sensor in sensors:
        assert set(sensor.acked) <= {seq for sid, seq in rows if sid == sensor.sensor_id}


def test_the_alert_consumer_resumes_from_its_committed_offset(make_runtime, tmp_path) -> None:
    rt, _settings, place = start(make_runtime, tmp_path, gateways=1, alert_poll_s=30)
    url = gateway_stats(rt, 1).url
    ctx = place.context()
    hot = [reading("s0", 1, temperature_c=95.0), reading("s0", 2, voltage_v=180.0)]
    assert post(url, hot, sensor_id="s0", token=place.tokens["s0"], context=ctx).status == 200
    first = rt.ask(ALERTS, CheckAlertsNow(), 10)
    assert isinstance(first, ConsumerStats) and (first.committed, first.alerts) == (2, 2)
    info = rt.which_child("alerts")
    assert info.info is not None and info.info.pid
    os.kill(info.info.pid, signal.SIGKILL)
    assert post(url, [reading("s1", 1, current_a=900.0)], sensor_id="s1",
                token=place.tokens["s1"], context=ctx).status == 200
    after = rt.wait_for(lambda: _check(rt), 20, what="the restarted consumer")
    assert after.committed == 3 and after.processed == 1  # resumed at offset 3, not from 1
    rules = [a.rule for a in stored_alerts(place.engine)]
    assert sorted(rules) == ["over_current", "over_temperature", "voltage_sag"]


def _check(rt: Any) -> ConsumerStats | None:
    try:
        return rt.ask(ALERTS, CheckAlertsNow(), 5)
    except Exception:  # noqa: BLE001 - restarting
        return None
