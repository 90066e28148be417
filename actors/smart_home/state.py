"""The smart home's per-sensor state and rules as plain objects: rolling windows, hourly rollups and
the four alert rules. No Thespian, no I/O: an analyzer actor owns one ``KindAnalysis`` and feeds it
batches, and tests drive it with made-up clocks.

Why plain objects and not one light actor per sensor: a sensor's state is its rolling windows (a few
KB of arrays, measured by ``state_bytes_per_sensor``), and every reading of a batch is a few array
updates. A light actor would add its own bookkeeping and a message per reading through its host's
scheduler, and buy no isolation that matters: every sensor of a kind runs the same code, so a bug
crashes them all alike. Isolation is per kind instead (one analyzer process per kind).

Windows are ring buffers of fixed slots keyed by the reading's own timestamp (RRD-style):
``minute`` is 60 one-second slots, ``hour`` 60 one-minute slots, ``day`` 24 one-hour slots. A
window's statistics at time ``now`` cover the slots of the last 60 s / 60 min / 24 h up to the slot
of ``now``, so they are exact at slot granularity and memory per sensor is constant.
"""

from __future__ import annotations

import math
import tracemalloc
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from protocols.smart_home import (
    METRICS,
    Alert,
    HouseConfig,
    SensorConfig,
    SensorStats,
    WindowStats,
)

WINDOWS: tuple[tuple[str, float, int], ...] = (("minute", 1.0, 60), ("hour", 60.0, 60),
                                              ("day", 3600.0, 24))
"""(name, slot seconds, slots) of each rolling window."""

HOUR_S = 3600.0
ROLLUP_GRACE_S = 60.0
"""An hour is rolled up when a later hour's reading arrives, or this long after it ended: a reading
for an hour already rolled up is a late reading (in the windows, not in the stored rollup)."""


class Windows:
    """One rolling window over all metrics of a sensor: ``size`` slots of ``slot_s`` seconds.

    The slot id and count are shared by the metrics (every reading of a kind has all of them);
    sums, lows and highs are flat arrays indexed ``slot * metrics + metric``. A reading older than
    the ring (its slot holds a newer id) is refused: ``add`` returns False.
    """

    __slots__ = ("slot_s", "size", "metrics", "ids", "counts", "sums", "lows", "highs")

    def __init__(self, slot_s: float, size: int, metrics: int) -> None:
        self.slot_s = slot_s
        self.size = size
        self.metrics = metrics
        self.ids = array("q", [-1]) * size
        self.counts = array("q", [0]) * size
        self.sums = array("d", [0.0]) * (size * metrics)
        self.lows = array("d", [0.0]) * (size * metrics)
        self.highs = array("d", [0.0]) * (size * metrics)

    def add(self, ts: float, values: list[float]) -> bool:
        slot = int(ts // self.slot_s)
        pos = slot % self.size
        base = pos * self.metrics
        sums, lows, highs = self.sums, self.lows, self.highs
        current = self.ids[pos]
        if current != slot:
            if current > slot:
                return False
            self.ids[pos] = slot
            self.counts[pos] = 1
            for i, value in enumerate(values, base):
                sums[i] = lows[i] = highs[i] = value
            return True
        self.counts[pos] += 1
        for i, value in enumerate(values, base):
            sums[i] += value
            if value < lows[i]:
                lows[i] = value
            if value > highs[i]:
                highs[i] = value
        return True

    def put(self, slot: int, count: int, sums: list[float], lows: list[float],
            highs: list[float]) -> None:
        """Replace slot ``slot`` with a summary (an hourly rollup read back after a restart)."""
        pos = slot % self.size
        if self.ids[pos] > slot:
            return
        self.ids[pos], self.counts[pos] = slot, count
        base = pos * self.metrics
        for m in range(self.metrics):
            self.sums[base + m] = sums[m]
            self.lows[base + m] = lows[m]
            self.highs[base + m] = highs[m]

    def summary(self, now: float) -> tuple[int, list[float], list[float], list[float]]:
        """(count, sums, lows, highs) per metric over the slots of the window ending at ``now``."""
        newest = int(now // self.slot_s)
        oldest = newest - self.size + 1
        n = self.metrics
        count = 0
        sums = [0.0] * n
        lows = [math.inf] * n
        highs = [-math.inf] * n
        for pos, slot in enumerate(self.ids):
            if oldest <= slot <= newest:
                count += self.counts[pos]
                base = pos * n
                for m in range(n):
                    sums[m] += self.sums[base + m]
                    if self.lows[base + m] < lows[m]:
                        lows[m] = self.lows[base + m]
                    if self.highs[base + m] > highs[m]:
                        highs[m] = self.highs[base + m]
        return count, sums, lows, highs


class SensorState:
    """What an analyzer remembers about one sensor: last reading, rule flags, windows, the hour
    being rolled up."""

    __slots__ = ("config", "metrics", "last_ts", "last_seen", "last_message_id", "last_values",
                 "windows", "hour", "hour_count", "hour_sums", "hour_lows", "hour_highs",
                 "closed_through", "out_of_range", "over_limit", "motion_alerted",
                 "silent_alerted", "range", "limit")

    def __init__(self, config: SensorConfig, house: HouseConfig) -> None:
        self.config = config
        self.metrics = METRICS[config.kind]
        n = len(self.metrics)
        self.last_ts: float | None = None
        self.last_seen: float | None = None
        self.last_message_id: str | None = None
        self.last_values: list[float] | None = None
        self.windows = tuple(Windows(slot_s, size, n) for _, slot_s, size in WINDOWS)
        self.hour: int | None = None
        self.hour_count = 0
        self.hour_sums = [0.0] * n
        self.hour_lows = [0.0] * n
        self.hour_highs = [0.0] * n
        self.closed_through = -1
        self.out_of_range = self.over_limit = self.motion_alerted = self.silent_alerted = False
        self.range = house.temperature_range(config)
        self.limit = config.power_limit


class KindAnalysis:
    """Statistics, rollups and alerts for every sensor of one kind.

    ``ingest`` takes one reading (a reading's ``model_dump()``) and appends what it triggered to
    the alert and rollup lists it is given. ``check_silence`` and ``close_hours`` are the
    clock-driven halves of the rules, called on a timer. Nothing here raises on odd data: a reading
    of an unknown sensor or another kind is counted and skipped (the ingest refuses those first).
    """

    def __init__(self, kind: str, house: HouseConfig, *, started_at: float) -> None:
        self.kind = kind
        self.house = house
        self.metrics = METRICS[kind]
        self.sensors = {s.sensor_id: SensorState(s, house) for s in house.of_kind(kind)}
        self.rooms: dict[str, list[SensorState]] = {}
        for state in self.sensors.values():
            self.rooms.setdefault(state.config.room, []).append(state)
        self.started_at = started_at
        self.mode = "home"
        self.readings = self.late_readings = self.skipped = 0
        self.alerts = self.rollups = 0

    # --- readings ---------------------------------------------------------------------------

    def ingest(self, row: Mapping[str, Any], received_at: float, alerts: list[dict[str, Any]],
               rollups: list[dict[str, Any]]) -> None:
        """Account one reading; append what it triggers to ``alerts`` and ``rollups``."""
        state = self.sensors.get(row.get("sensor_id", ""))
        if state is None or row.get("kind") != self.kind:
            self.skipped += 1
            return
        ts = float(row["ts"])
        values = [float(row[m]) for m in self.metrics]
        self.readings += 1
        state.last_seen = received_at
        state.silent_alerted = False
        if state.last_ts is None or ts >= state.last_ts:
            state.last_ts = ts
            state.last_values = values
        state.last_message_id = str(row["message_id"])
        for window in state.windows:
            window.add(ts, values)
        self._roll(state, ts, values, rollups)
        self._rules(state, row, ts, values, alerts)

    def _roll(self, state: SensorState, ts: float, values: list[float],
              rollups: list[dict[str, Any]]) -> None:
        hour = int(ts // HOUR_S)
        if hour <= state.closed_through:
            self.late_readings += 1
            return
        if state.hour is not None and hour != state.hour:
            if hour < state.hour:
                self.late_readings += 1  # behind the hour still open: that one is rolled next
                return
            self._emit_rollup(state, rollups)
        if state.hour is None:
            state.hour, state.hour_count = hour, 1
            state.hour_sums, state.hour_lows, state.hour_highs = values[:], values[:], values[:]
            return
        state.hour_count += 1
        for m, value in enumerate(values):
            state.hour_sums[m] += value
            if value < state.hour_lows[m]:
                state.hour_lows[m] = value
            if value > state.hour_highs[m]:
                state.hour_highs[m] = value

    def _emit_rollup(self, state: SensorState, rollups: list[dict[str, Any]]) -> None:
        hour = state.hour
        assert hour is not None
        config = state.config
        for m, metric in enumerate(self.metrics):
            rollups.append({
                "message_id": f"{config.sensor_id}:{metric}:{hour}",
                "sensor_id": config.sensor_id, "room": config.room, "kind": config.kind,
                "metric": metric, "hour_start": hour * HOUR_S, "samples": state.hour_count,
                "low": state.hour_lows[m], "high": state.hour_highs[m],
                "mean": state.hour_sums[m] / state.hour_count,
            })
        self.rollups += len(self.metrics)
        state.closed_through = hour
        state.hour = None
        state.hour_count = 0

    def close_hours(self, now: float) -> list[dict[str, Any]]:
        """Roll up every hour that ended more than ``ROLLUP_GRACE_S`` ago and is still open."""
        rollups: list[dict[str, Any]] = []
        for state in self.sensors.values():
            if state.hour is not None and now >= (state.hour + 1) * HOUR_S + ROLLUP_GRACE_S:
                self._emit_rollup(state, rollups)
        return rollups

    # --- alert rules --------------------------------------------------------------------------

    def _rules(self, state: SensorState, row: Mapping[str, Any], ts: float, values: list[float],
               alerts: list[dict[str, Any]]) -> None:
        kind = self.kind
        if kind in ("heating", "meteo"):
            temperature = values[0]
            low, high = state.range
            outside = temperature < low or temperature > high
            if outside and not state.out_of_range:
                bound = low if temperature < low else high
                where = "below" if temperature < low else "above"
                alerts.append(self._alert("temperature_out_of_range", state, row, ts, temperature,
                                          bound, f"{state.config.sensor_id}: {temperature:.1f} °C "
                                          f"is {where} the range {low:g}..{high:g} °C"))
            state.out_of_range = outside
        elif kind == "electricity":
            power = values[0]
            limit = state.limit or math.inf
            over = power > limit
            if over and not state.over_limit:
                alerts.append(self._alert("power_over_limit", state, row, ts, power, limit,
                                          f"{state.config.sensor_id}: {power:,.0f} W is over the "
                                          f"circuit limit of {limit:,.0f} W"))
            state.over_limit = over
        elif kind == "motion":
            moving = values[0] > 0.5
            if moving and self.mode == "away" and not state.motion_alerted:
                alerts.append(self._alert("motion_while_away", state, row, ts, 1.0, None,
                                          f"motion in {state.config.room} while the house is "
                                          f"set to away"))
                state.motion_alerted = True
            elif not moving:
                state.motion_alerted = False

    def _alert(self, rule: str, state: SensorState, row: Mapping[str, Any], ts: float,
               value: float | None, threshold: float | None, text: str) -> dict[str, Any]:
        self.alerts += 1
        config = state.config
        alert_id = f"{rule}:{config.sensor_id}:{row['message_id']}"
        return Alert(alert_id=alert_id, rule=rule,  # type: ignore[arg-type]
                     sensor_id=config.sensor_id, room=config.room, kind=config.kind, ts=ts,
                     value=value, threshold=threshold, text=text).model_dump()

    def set_mode(self, mode: str) -> None:
        """The house went ``home`` or ``away``; motion alerts re-arm on every change."""
        if mode != self.mode:
            self.mode = mode
            for state in self.sensors.values():
                state.motion_alerted = False

    def load_last_seen(self, arrivals: Mapping[str, tuple[float, str]]) -> None:
        """When each sensor was last heard of and its last message id, from the store (a
        restarted analysis: a silence it finds has the id the earlier run gave it)."""
        for sensor_id, (received_at, message_id) in arrivals.items():
            state = self.sensors.get(sensor_id)
            if state is not None and (state.last_seen is None or received_at > state.last_seen):
                state.last_seen = received_at
                state.last_message_id = message_id

    def open_alerts(self, now: float) -> list[dict[str, str]]:
        """The alert conditions that hold now (fired and not cleared), one line each."""
        out: list[dict[str, str]] = []
        for state in self.sensors.values():
            config = state.config
            sid, value = config.sensor_id, (state.last_values or [math.nan])[0]
            found: list[tuple[str, str]] = []
            if state.out_of_range:
                low, high = state.range
                found.append(("temperature_out_of_range",
                              f"{sid}: {value:.1f} °C is outside the range {low:g}..{high:g} °C"))
            if state.over_limit:
                limit = state.limit or 0.0
                found.append(("power_over_limit",
                              f"{sid}: {value:,.0f} W is over the circuit limit of {limit:,.0f} W"))
            if state.motion_alerted:
                found.append(("motion_while_away",
                              f"motion in {config.room} while the house is away"))
            if state.silent_alerted:
                since = state.last_seen if state.last_seen is not None else self.started_at
                found.append(("sensor_silent", f"{sid}: silent for {now - since:.0f} s"))
            out += [{"rule": rule, "sensor_id": sid, "room": config.room, "text": text}
                    for rule, text in found]
        return out

    def check_silence(self, now: float, up_s: float | None = None) -> list[dict[str, Any]]:
        """One alert per sensor that has said nothing for ``silent_after_s`` (by arrival time; a
        sensor never heard from counts from when this analysis started). Re-armed by a reading.

        ``up_s``: how long the system has been up to hear the sensors. Nothing is judged before
        it reaches ``silent_after_s``: after a restart, a sensor that was not heard while the
        system was down was not silent, it was not listened to."""
        limit = self.house.silent_after_s
        alerts: list[dict[str, Any]] = []
        if up_s is not None and up_s < limit:
            return alerts
        for state in self.sensors.values():
            since = state.last_seen if state.last_seen is not None else self.started_at
            silence = now - since
            if silence >= limit and not state.silent_alerted:
                state.silent_alerted = True
                self.alerts += 1
                config = state.config
                last = state.last_message_id or "never"
                heard = "never reported" if state.last_message_id is None else \
                    f"silent for {silence:.0f} s"
                alerts.append(Alert(
                    alert_id=f"sensor_silent:{config.sensor_id}:{last}", rule="sensor_silent",
                    sensor_id=config.sensor_id, room=config.room, kind=config.kind, ts=now,
                    value=round(silence, 3), threshold=limit,
                    text=f"{config.sensor_id}: {heard} (limit {limit:g} s)").model_dump())
        return alerts

    # --- statistics ---------------------------------------------------------------------------

    def sensor_stats(self, state: SensorState, now: float) -> SensorStats:
        windows: dict[str, dict[str, WindowStats]] = {}
        for (name, _, _), window in zip(WINDOWS, state.windows):
            count, sums, lows, highs = window.summary(now)
            if count:
                windows[name] = {metric: WindowStats(count=count, min=lows[m], max=highs[m],
                                                     mean=sums[m] / count)
                                 for m, metric in enumerate(self.metrics)}
        last: dict[str, float | bool] = {}
        if state.last_values is not None:
            last = {m: (v > 0.5 if m == "motion" else v)
                    for m, v in zip(self.metrics, state.last_values)}
        config = state.config
        return SensorStats(sensor_id=config.sensor_id, kind=config.kind, room=config.room,
                           last_ts=state.last_ts, last_received_at=state.last_seen, last=last,
                           windows=windows)

    def room_stats(self, room: str, now: float) -> list[SensorStats]:
        return [self.sensor_stats(state, now) for state in self.rooms.get(room, ())]

    def hour_window_counts(self, now: float) -> dict[str, int]:
        """Readings per sensor in its hour window: what an audit compares with the database."""
        return {sid: state.windows[1].summary(now)[0] for sid, state in self.sensors.items()}

    # --- rebuilding after a restart -----------------------------------------------------------

    def load_rollups(self, rows: Iterable[Mapping[str, Any]], before_hour: int) -> int:
        """Put stored hourly rollups of hours before ``before_hour`` into the day windows (the hours
        a replay does not cover); returns how many sensor-hours were loaded."""
        grouped: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
        for row in rows:
            hour = int(float(row["hour_start"]) // HOUR_S)
            if hour < before_hour and row["sensor_id"] in self.sensors:
                grouped.setdefault((row["sensor_id"], hour), {})[row["metric"]] = row
        loaded = 0
        for (sensor_id, hour), by_metric in grouped.items():
            state = self.sensors[sensor_id]
            if any(m not in by_metric for m in self.metrics):
                continue
            rows_in_order = [by_metric[m] for m in self.metrics]
            count = int(rows_in_order[0]["samples"])
            state.windows[2].put(hour, count, [float(r["mean"]) * count for r in rows_in_order],
                                 [float(r["low"]) for r in rows_in_order],
                                 [float(r["high"]) for r in rows_in_order])
            state.closed_through = max(state.closed_through, hour)
            loaded += 1
        return loaded


def state_bytes_per_sensor(kind: str, count: int = 1000) -> float:
    """Measured memory of one sensor's state (traced allocations of ``count`` of them / count)."""
    house = HouseConfig(sensors=tuple(
        SensorConfig(sensor_id=f"s{n}", kind=kind, room="r",  # type: ignore[arg-type]
                     power_limit=1000.0 if kind == "electricity" else None)
        for n in range(count)))
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        states = [SensorState(config, house) for config in house.sensors]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not tracing:
            tracemalloc.stop()
    del states
    return (after - before) / count


__all__ = ["HOUR_S", "KindAnalysis", "ROLLUP_GRACE_S", "SensorState", "WINDOWS", "Windows",
           "state_bytes_per_sensor"]
