"""Hourly rollups and day statistics agree with SQL run directly over the stored readings."""

from __future__ import annotations

import random
import time

import pytest

from protocols.smart_home import METRICS
from tests.support.smart_home import reading, start_home

HOUR = 3600


def test_the_rollups_match_a_direct_sql_computation_over_the_readings(make_runtime,
                                                                      tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    rng = random.Random(4)
    start = (time.time() // HOUR - 4) * HOUR        # three whole hours, ended over an hour ago
    batch = []
    for n in range(3 * HOUR // 10):                  # a reading every 10 s
        ts = start + n * 10 + rng.random()
        batch.append(reading("heating", ts=ts, temperature=round(rng.uniform(15, 25), 2),
                             setpoint=rng.choice([17.0, 21.0]), valve=rng.uniform(0, 100)))
        batch.append(reading("electricity", ts=ts, power=rng.uniform(0, 3000),
                             energy=1000.0 + n))
    for chunk in range(0, len(batch), 500):
        assert home.post("/readings/batch", batch[chunk:chunk + 500]).status == 200
    for kind in ("heating", "electricity"):
        home.rt.wait_for(lambda k=kind: home.check(k).rollups == 3 * len(METRICS[k]),
                         what=f"{kind} hours rolled up")
    home.wait_stored(3 * 3 + 3 * 2, "smart_home_rollups")
    home.wait_stored(len(batch))

    compared = 0
    for sensor_id, kind in (("heating-living", "heating"), ("circuit-kitchen", "electricity")):
        for metric in METRICS[kind]:
            expected = home.sql(
                f"SELECT CAST(ts / 3600 AS INTEGER) * 3600.0 AS hour, COUNT(*), MIN({metric}), "
                f"MAX({metric}), AVG({metric}) FROM smart_home_readings "
                f"WHERE sensor_id = :s GROUP BY CAST(ts / 3600 AS INTEGER) ORDER BY hour",
                s=sensor_id)
            rolled = home.sql("SELECT hour_start, samples, low, high, mean FROM "
                              "smart_home_rollups WHERE sensor_id = :s AND metric = :m "
                              "ORDER BY hour_start", s=sensor_id, m=metric)
            assert len(expected) == len(rolled) == 3
            for (hour, count, low, high, mean), (r_hour, r_count, r_low, r_high, r_mean) in \
                    zip(expected, rolled):
                assert (r_hour, r_count, r_low, r_high) == (hour, count, low, high)
                assert r_mean == pytest.approx(mean, rel=1e-12)
                compared += 1
    assert compared == 3 * (3 + 2)

    stats = home.get("/rooms/living/stats").json["sensors"][0]["windows"]
    assert set(stats) == {"day"}                    # nothing in the last minute or hour
    day = stats["day"]["temperature"]
    whole = home.sql("SELECT COUNT(*), MIN(temperature), MAX(temperature), AVG(temperature) "
                     "FROM smart_home_readings WHERE sensor_id = 'heating-living'")[0]
    assert (day["count"], day["min"], day["max"]) == tuple(whole[:3])
    assert day["mean"] == pytest.approx(whole[3], rel=1e-12)
