"""The alert rules over plain data: each rule fires on its condition and only then, and a silent
sensor is reported once per silence."""

from __future__ import annotations

from actors.grid import AlertRules
from protocols.grid import PERIOD_S, SILENT_PERIODS, SensorRecord


def rules() -> AlertRules:
    return AlertRules({"c1": SensorRecord(sensor_id="c1", substation="n", kind="cable",
                                          nominal_v=230, rating_a=400, max_temp_c=70)})


def reading(seq: int, **values: float) -> dict:
    return {"sensor_id": "c1", "seq": seq, "ts": 1000.0 + seq, "received_at": 1000.0 + seq,
            **values}


def test_each_rule_fires_on_its_condition_only() -> None:
    r = rules()
    assert r.check(reading(1, temperature_c=69.9, voltage_v=207.5, current_a=400)) == []
    fired = {a.rule: a for a in r.check(reading(2, temperature_c=71, voltage_v=206.9,
                                                current_a=401))}
    assert set(fired) == {"over_temperature", "voltage_sag", "over_current"}
    assert fired["voltage_sag"].threshold == 207.0 and fired["over_current"].value == 401
    assert [a.rule for a in r.check(reading(3, voltage_v=253.1))] == ["voltage_swell"]
    assert r.check(reading(4, voltage_v=253.0)) == []
    assert r.check({"sensor_id": "unknown", "seq": 1, "ts": 1.0, "temperature_c": 500}) == []


def test_a_silent_sensor_is_reported_once_per_silence() -> None:
    r = rules()
    r.check(reading(1))
    limit = SILENT_PERIODS * PERIOD_S
    assert r.silent(1001.0 + limit) == []
    first = r.silent(1001.0 + limit + 0.1)
    assert [(a.rule, a.sensor_id, a.seq) for a in first] == [("silent", "c1", 1)]
    assert r.silent(1001.0 + 2 * limit) == []  # the same silence
    r.check(reading(50))
    assert [a.seq for a in r.silent(1050.0 + limit + 1)] == [50]  # a new silence
