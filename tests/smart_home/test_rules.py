"""The analyzers' brain without actors: each alert rule firing and not firing, the rolling windows,
the hourly rollups, and what one sensor's state costs. Times are made up, so nothing waits."""

from __future__ import annotations

from typing import Any

import pytest

from actors.smart_home.state import HOUR_S, ROLLUP_GRACE_S, KindAnalysis, state_bytes_per_sensor
from protocols.smart_home import KINDS, HouseConfig, SensorConfig

T0 = 1_700_000_000.0 - (1_700_000_000.0 % HOUR_S)  # the start of an hour

HOUSE = HouseConfig(sensors=(
    SensorConfig(sensor_id="heat", kind="heating", room="living"),
    SensorConfig(sensor_id="cold-room", kind="heating", room="cellar", temperature_range=(4, 15)),
    SensorConfig(sensor_id="move", kind="motion", room="living"),
    SensorConfig(sensor_id="oven", kind="electricity", room="kitchen", power_limit=3000),
    SensorConfig(sensor_id="meteo", kind="meteo", room="outside"),
), indoor_range=(12, 28), outdoor_range=(-20, 38), silent_after_s=10)


class Feed:
    """One ``KindAnalysis`` and what it produced."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.analysis = KindAnalysis(kind, HOUSE, started_at=T0)
        self.alerts: list[dict[str, Any]] = []
        self.rollups: list[dict[str, Any]] = []
        self.seq = 0

    def send(self, sensor_id: str, ts: float, **values: Any) -> list[dict[str, Any]]:
        """Feed one reading; returns the alerts it raised."""
        self.seq += 1
        before = len(self.alerts)
        row = {"kind": self.kind, "sensor_id": sensor_id, "message_id": f"m{self.seq}", "ts": ts,
               **values}
        self.analysis.ingest(row, ts, self.alerts, self.rollups)
        return self.alerts[before:]

    def heat(self, temperature: float, ts: float, sensor_id: str = "heat") -> list[dict[str, Any]]:
        return self.send(sensor_id, ts, temperature=temperature, setpoint=21.0, valve=50.0)


# --- temperature out of range -------------------------------------------------------------------

@pytest.mark.parametrize("temperature, fires", [
    (11.9, True), (12.0, False), (20.0, False), (28.0, False), (28.1, True),
])
def test_temperature_out_of_range_fires_outside_the_range_only(temperature: float,
                                                               fires: bool) -> None:
    alerts = Feed("heating").heat(temperature, T0)
    assert [a["rule"] for a in alerts] == (["temperature_out_of_range"] if fires else [])
    if fires:
        assert alerts[0]["value"] == temperature
        assert alerts[0]["threshold"] == (12.0 if temperature < 12 else 28.0)


def test_temperature_out_of_range_fires_once_per_excursion_and_again_after_recovery() -> None:
    feed = Feed("heating")
    fired = [len(feed.heat(t, T0 + n)) for n, t in enumerate([30, 31, 32, 20, 30])]
    assert fired == [1, 0, 0, 0, 1]


def test_a_sensor_range_and_the_outdoor_range_override_the_indoor_one() -> None:
    cellar = Feed("heating")
    assert cellar.heat(14.0, T0, sensor_id="cold-room") == []
    assert len(cellar.heat(16.0, T0 + 1, sensor_id="cold-room")) == 1
    meteo = Feed("meteo")
    weather = {"humidity": 50.0, "pressure": 1000.0, "wind": 1.0, "rain": 0.0}
    assert meteo.send("meteo", T0, temperature=-5.0, **weather) == []        # cold, not wrong
    assert len(meteo.send("meteo", T0 + 1, temperature=-21.0, **weather)) == 1


# --- motion while away ----------------------------------------------------------------------------

def test_motion_while_away_fires_only_when_away_and_moving() -> None:
    feed = Feed("motion")
    assert feed.send("move", T0, motion=True) == []           # home: people move
    feed.analysis.set_mode("away")
    assert feed.send("move", T0 + 1, motion=False) == []      # away, nothing moves
    fired = feed.send("move", T0 + 2, motion=True)
    assert [a["rule"] for a in fired] == ["motion_while_away"] and fired[0]["room"] == "living"


def test_motion_while_away_fires_once_per_burst_and_re_arms() -> None:
    feed = Feed("motion")
    feed.analysis.set_mode("away")
    fired = [len(feed.send("move", T0 + n, motion=m)) for n, m in
             enumerate([True, True, True, False, True])]
    assert fired == [1, 0, 0, 0, 1]
    feed.analysis.set_mode("home")
    assert feed.send("move", T0 + 9, motion=True) == []


# --- power over the circuit limit -----------------------------------------------------------------

@pytest.mark.parametrize("power, fires", [(2999.0, False), (3000.0, False), (3000.5, True)])
def test_power_over_limit_fires_above_the_circuit_limit_only(power: float, fires: bool) -> None:
    alerts = Feed("electricity").send("oven", T0, power=power, energy=1.0)
    assert [a["rule"] for a in alerts] == (["power_over_limit"] if fires else [])


def test_power_over_limit_fires_once_per_overload() -> None:
    feed = Feed("electricity")
    fired = [len(feed.send("oven", T0 + n, power=p, energy=1.0))
             for n, p in enumerate([3500, 3600, 100, 3100])]
    assert fired == [1, 0, 0, 1]


# --- a silent sensor ----------------------------------------------------------------------------

def test_a_sensor_silent_for_10_s_fires_once_and_a_reading_re_arms_it() -> None:
    feed = Feed("electricity")
    feed.send("oven", T0, power=10.0, energy=1.0)
    assert feed.analysis.check_silence(T0 + 9.99) == []
    fired = feed.analysis.check_silence(T0 + 10.0)
    assert [(a["rule"], a["sensor_id"]) for a in fired] == [("sensor_silent", "oven")]
    assert fired[0]["alert_id"] == "sensor_silent:oven:m1"  # the same silence: the same id
    assert feed.analysis.check_silence(T0 + 30) == []
    feed.send("oven", T0 + 31, power=10.0, energy=1.0)
    assert feed.analysis.check_silence(T0 + 40) == []
    assert len(feed.analysis.check_silence(T0 + 41)) == 1


def test_a_sensor_never_heard_from_counts_from_the_start() -> None:
    feed = Feed("motion")
    assert feed.analysis.check_silence(T0 + 5) == []
    fired = feed.analysis.check_silence(T0 + 10)
    assert fired[0]["alert_id"] == "sensor_silent:move:never"
    assert "never reported" in fired[0]["text"]


# --- rolling windows ----------------------------------------------------------------------------

def test_windows_give_min_max_mean_over_the_last_minute_hour_and_day() -> None:
    feed = Feed("heating")
    feed.heat(10.0, T0 - 20 * HOUR_S)    # yesterday evening: in the day window only
    feed.heat(30.0, T0 + 100)            # in the hour window, not the last minute
    feed.heat(18.0, T0 + 1000)
    feed.heat(22.0, T0 + 1030)
    stats = feed.analysis.sensor_stats(feed.analysis.sensors["heat"], now=T0 + 1040)
    temp = {name: stats.windows[name]["temperature"] for name in ("minute", "hour", "day")}
    assert (temp["minute"].count, temp["minute"].min, temp["minute"].max,
            temp["minute"].mean) == (2, 18.0, 22.0, 20.0)
    assert (temp["hour"].count, temp["hour"].min, temp["hour"].max) == (3, 18.0, 30.0)
    assert temp["hour"].mean == pytest.approx(70 / 3)
    assert (temp["day"].count, temp["day"].min, temp["day"].max) == (4, 10.0, 30.0)
    assert stats.last == {"temperature": 22.0, "setpoint": 21.0, "valve": 50.0}


def test_old_readings_leave_the_windows_as_time_passes() -> None:
    feed = Feed("motion")
    feed.send("move", T0, motion=True)
    state = feed.analysis.sensors["move"]
    assert set(feed.analysis.sensor_stats(state, T0 + 59).windows) == {"minute", "hour", "day"}
    assert set(feed.analysis.sensor_stats(state, T0 + 61).windows) == {"hour", "day"}
    assert set(feed.analysis.sensor_stats(state, T0 + 2 * HOUR_S).windows) == {"day"}
    assert feed.analysis.sensor_stats(state, T0 + 25 * HOUR_S).windows == {}


# --- hourly rollups -----------------------------------------------------------------------------

def test_an_hour_is_rolled_up_when_the_next_hour_begins() -> None:
    feed = Feed("electricity")
    for n, power in enumerate([100.0, 300.0, 200.0]):
        feed.send("oven", T0 + n * 600, power=power, energy=float(n))
    assert feed.rollups == []
    feed.send("oven", T0 + HOUR_S + 1, power=50.0, energy=9.0)
    by_metric = {r["metric"]: r for r in feed.rollups}
    assert by_metric["power"] == {**by_metric["power"], "samples": 3, "low": 100.0, "high": 300.0,
                                  "mean": 200.0, "hour_start": T0}
    assert by_metric["energy"]["message_id"] == f"oven:energy:{int(T0 // HOUR_S)}"


def test_a_quiet_hour_is_rolled_up_by_the_clock_and_late_readings_stay_out() -> None:
    feed = Feed("electricity")
    feed.send("oven", T0 + 10, power=100.0, energy=1.0)
    assert feed.analysis.close_hours(T0 + HOUR_S + ROLLUP_GRACE_S - 1) == []
    rolled = feed.analysis.close_hours(T0 + HOUR_S + ROLLUP_GRACE_S)
    assert [r["samples"] for r in rolled] == [1, 1]
    feed.send("oven", T0 + 20, power=900.0, energy=2.0)   # late: that hour is stored already
    assert feed.analysis.late_readings == 1 and feed.analysis.close_hours(T0 + 3 * HOUR_S) == []


def test_stored_rollups_refill_the_day_window_after_a_restart() -> None:
    feed = Feed("heating")
    for n, t in enumerate([19.0, 23.0]):
        feed.heat(t, T0 - 3 * HOUR_S + n)
    feed.heat(20.0, T0 - 2 * HOUR_S)                     # closes the hour three hours ago
    restarted = KindAnalysis("heating", HOUSE, started_at=T0)
    assert restarted.load_rollups(feed.rollups, before_hour=int(T0 // HOUR_S)) == 1
    day = restarted.sensor_stats(restarted.sensors["heat"], T0).windows["day"]["temperature"]
    assert (day.count, day.min, day.max, day.mean) == (2, 19.0, 23.0, 21.0)


# --- what a sensor costs ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_one_sensors_state_stays_within_32_kb(kind: str) -> None:
    """The measured figure behind keeping sensors as plain objects (see docs/systems)."""
    assert 1000 < state_bytes_per_sensor(kind, count=200) < 32 * 1024
