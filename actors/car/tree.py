"""The car's live state as plain objects: ``SignalTree`` (signals, their sensors, ownership by
strength, deadlines, plausibility) and ``Subscriptions`` (who wants which signals, at what rate).

No actor, no socket, no clock of its own: every method takes ``now`` (the holder passes its
clock's monotonic seconds; tests pass a ``MockClock``'s), so deadlines and rates are tested by
moving time, never by sleeping.

Rules (see docs/systems/car.md):

* A sensor datagram is **accepted** when its sensor is known, its value fits the signal's datatype
  and range, and its sequence is newer than the last one seen from that sensor (a sensor silent
  past its deadline may start again from any sequence: it restarted). Anything else is counted by
  reason and dropped.
* **Ownership** (DDS's exclusive ownership): the strongest *live* sensor of a signal owns its
  value. A sensor is live while its last datagram is younger than its deadline
  (``deadline_periods`` x the signal's period, 3 by default). A stronger sensor takes over at its
  first datagram; when the owner misses its deadline, the next live sensor takes over at its next
  datagram or at the next ``sweep``, whichever comes first, with its last value and that value's
  true age. With no live sensor the signal keeps its last value and turns ``stale``.
* **Plausibility**: when two live sensors of a signal differ by more than the signal's tolerance an
  ``Alert`` is raised once; it clears when they agree again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from actors.car.vss import SensorSpec, SignalSpec
from protocols.car import Alert, SignalValue

__all__ = ["AVAILABLE", "STALE", "UNKNOWN", "Sensor", "Signal", "SignalTree", "Subscription",
           "Subscriptions", "UnknownSignalError"]

AVAILABLE, STALE, UNKNOWN = "available", "stale", "unknown"
SET_SOURCE = "set"
ALERTS_KEPT = 100
SensorState = tuple[int, float, Any, float]  # last seq, age (s), last value, its timestamp


class UnknownSignalError(KeyError):
    """A path names no signal and no branch."""


class Sensor:
    __slots__ = (
        "label",
        "last_seen",
        "last_seq",
        "last_ts",
        "last_value",
        "sensor_id",
        "signal",
        "strength",
    )

    def __init__(self, spec: SensorSpec, signal: Signal) -> None:
        self.sensor_id = spec.sensor_id
        self.label = f"sensor-{spec.sensor_id}"
        self.strength = spec.strength
        self.signal = signal
        self.last_seq = -1
        self.last_seen = float("-inf")
        self.last_value: Any = None
        self.last_ts = 0.0


class Signal:
    __slots__ = (
        "alerting",
        "deadline_s",
        "owner",
        "path",
        "sensors",
        "seq",
        "source",
        "spec",
        "state",
        "ts",
        "updated_at",
        "value",
        "watchers",
    )

    def __init__(self, spec: SignalSpec, deadline_periods: float) -> None:
        self.spec = spec
        self.path = spec.path
        self.deadline_s = spec.period_s * deadline_periods
        self.value: Any = None
        self.source: str | None = None
        self.ts = 0.0
        self.seq = 0
        self.updated_at = 0.0
        self.state = UNKNOWN
        self.owner: Sensor | None = None
        self.sensors: list[Sensor] = []  # strongest first
        self.alerting = False
        self.watchers: list[Subscription] = []

    def row(self, now: float) -> tuple[Any, ...]:
        """As ``SignalValue.row()``, without building a model (the hot path)."""
        age_ms = round((now - self.updated_at) * 1000, 3) if self.state != UNKNOWN else 0.0
        return (self.path, self.value, self.source, self.ts, age_ms, self.state, self.seq)

    def value_at(self, now: float) -> SignalValue:
        return SignalValue.from_row(self.row(now))


class SignalTree:
    """Every signal of the car and every sensor feeding one; see the module docstring."""

    def __init__(self, specs: Iterable[SignalSpec], sensors: Iterable[SensorSpec], *,
                 deadline_periods: float = 3.0) -> None:
        self.signals: dict[str, Signal] = {}
        for spec in specs:
            if spec.path in self.signals:
                raise ValueError(f"signal {spec.path} is declared twice")
            self.signals[spec.path] = Signal(spec, deadline_periods)
        self.sensors: dict[int, Sensor] = {}
        for sensor_spec in sensors:
            signal = self.signals.get(sensor_spec.path)
            if signal is None:
                raise ValueError(f"sensor {sensor_spec.sensor_id} feeds unknown signal "
                                 f"{sensor_spec.path}")
            if sensor_spec.sensor_id in self.sensors:
                raise ValueError(f"sensor id {sensor_spec.sensor_id} is used twice")
            sensor = self.sensors[sensor_spec.sensor_id] = Sensor(sensor_spec, signal)
            signal.sensors.append(sensor)
        self.fed = [s for s in self.signals.values() if s.sensors]
        for signal in self.fed:
            signal.sensors.sort(key=lambda s: -s.strength)
        self.accepted = self.owned_updates = 0
        self.dropped_unknown_sensor = self.dropped_out_of_range = self.dropped_stale_seq = 0
        self.failovers = 0
        self.alerts_raised = 0
        self.alerts: deque[Alert] = deque(maxlen=ALERTS_KEPT)

    # --- sensors ------------------------------------------------------------------------------

    def apply(self, sensor_id: int, seq: int, ts: float, value: Any, now: float) -> Signal | None:
        """Take one sample; returns its signal if the signal's value changed (the sensor owns
        it), else None (dropped, or a redundant sensor that does not own the value)."""
        sensor = self.sensors.get(sensor_id)
        if sensor is None:
            self.dropped_unknown_sensor += 1
            return None
        signal = sensor.signal
        if signal.spec.check(value):
            self.dropped_out_of_range += 1
            return None
        if seq <= sensor.last_seq and now - sensor.last_seen <= signal.deadline_s:
            self.dropped_stale_seq += 1
            return None
        sensor.last_seq, sensor.last_seen, sensor.last_value, sensor.last_ts = seq, now, value, ts
        self.accepted += 1
        if len(signal.sensors) > 1:
            self._check_plausibility(signal, sensor, now)
        owner = signal.owner
        if owner is not sensor:
            if owner is not None and owner.strength >= sensor.strength \
                    and now - owner.last_seen <= signal.deadline_s:
                return None  # a stronger (or as strong, earlier) live sensor owns the value
            if owner is not None and signal.state == AVAILABLE \
                    and now - owner.last_seen > signal.deadline_s:
                self.failovers += 1
            signal.owner = sensor
            signal.source = sensor.label
        signal.value, signal.ts, signal.seq, signal.updated_at = value, ts, seq, now
        signal.state = AVAILABLE
        self.owned_updates += 1
        return signal

    def sweep(self, now: float) -> list[Signal]:
        """Pass ownership of every signal whose owner missed its deadline to the strongest live
        sensor, or mark the signal stale; returns the signals that changed."""
        changed = []
        for signal in self.fed:
            owner = signal.owner
            if owner is None or signal.state != AVAILABLE or \
                    now - owner.last_seen <= signal.deadline_s:
                continue
            deadline = signal.deadline_s
            heir = next((s for s in signal.sensors
                         if s is not owner and now - s.last_seen <= deadline), None)
            if heir is None:
                signal.state = STALE
            else:
                self.failovers += 1
                signal.owner = heir
                signal.source = heir.label
                signal.value, signal.ts, signal.seq = heir.last_value, heir.last_ts, heir.last_seq
                signal.updated_at = heir.last_seen
            changed.append(signal)
        return changed

    def _check_plausibility(self, signal: Signal, sensor: Sensor, now: float) -> None:
        tolerance = signal.spec.tolerance
        if tolerance is None:
            return
        deadline, value = signal.deadline_s, sensor.last_value
        worst: Sensor | None = None
        for other in signal.sensors:
            if other is sensor or now - other.last_seen > deadline:
                continue
            if abs(float(value) - float(other.last_value)) > tolerance:
                worst = other
                break
        if worst is None:
            signal.alerting = False
        elif not signal.alerting:
            signal.alerting = True
            self.alerts_raised += 1
            self.alerts.append(Alert(path=signal.path, sensors=(sensor.label, worst.label),
                                     values=(float(value), float(worst.last_value)),
                                     tolerance=tolerance, at=now))

    def active_alerts(self) -> list[Alert]:
        """The latest alert of each signal whose sensors still disagree."""
        latest = {alert.path: alert for alert in self.alerts}
        return [alert for path, alert in latest.items() if self.signals[path].alerting]

    # --- clients ------------------------------------------------------------------------------

    def resolve(self, paths: Iterable[str]) -> list[Signal]:
        """The signals named by ``paths``: a signal's path, or a branch for every signal under it.
        Raises ``UnknownSignalError`` naming the first path that matches nothing."""
        found: dict[str, Signal] = {}
        for path in paths:
            signal = self.signals.get(path)
            if signal is not None:
                found[path] = signal
                continue
            prefix = path + "."
            under = [s for p, s in self.signals.items() if p.startswith(prefix)]
            if not under:
                raise UnknownSignalError(path)
            found.update((s.path, s) for s in under)
        return list(found.values())

    def get(self, paths: Iterable[str], now: float) -> list[SignalValue]:
        return [signal.value_at(now) for signal in self.resolve(paths)]

    def set(self, path: str, value: Any, ts: float, now: float) -> tuple[Signal | None, str, str]:
        """Set an actuator's value: ``(signal, "", "")``, or ``(None, kind, why)`` with kind
        ``not_found``, ``forbidden`` (not an actuator) or ``invalid`` (type or range)."""
        signal = self.signals.get(path)
        if signal is None:
            return None, "not_found", f"no signal {path}"
        if not signal.spec.settable:
            return None, "forbidden", f"{path} is a {signal.spec.type}, not an actuator"
        why = signal.spec.check(value)
        if why:
            return None, "invalid", why
        signal.value, signal.source, signal.ts, signal.updated_at = value, SET_SOURCE, ts, now
        signal.seq += 1
        signal.state = AVAILABLE
        return signal, "", ""

    # --- a pair member's state ----------------------------------------------------------------

    def snapshot(self, now: float) -> tuple[list[SignalValue], dict[int, SensorState]]:
        """Every known value, and each sensor's ``(last seq, age of its last datagram in s, last
        value, its timestamp)``."""
        values = [s.value_at(now) for s in self.signals.values() if s.state != UNKNOWN]
        sensors = {i: (s.last_seq, now - s.last_seen, s.last_value, s.last_ts)
                   for i, s in self.sensors.items() if s.last_seq >= 0}
        return values, sensors

    def restore(self, values: Iterable[SignalValue], sensors: dict[int, SensorState],
                now: float) -> int:
        """Take a peer's snapshot (a restarted member): each value keeps its source, timestamp
        and age, but turns ``stale`` until a sensor of its own confirms it; each sensor keeps its
        sequence and the age of its last datagram (so an old sequence is still refused). Values
        and sensors this tree has heard of since it started are fresher and kept. Returns how
        many values were restored."""
        restored = 0
        by_label = {sensor.label: sensor for sensor in self.sensors.values()}
        for value in values:
            signal = self.signals.get(value.path)
            if signal is None or signal.state != UNKNOWN:
                continue  # not ours, or fresher already
            signal.value, signal.source, signal.ts, signal.seq = (value.value, value.source,
                                                                  value.ts, value.seq)
            signal.updated_at = now - value.age_ms / 1000
            signal.state = STALE if signal.sensors else value.state
            owner = by_label.get(value.source or "")
            signal.owner = owner if owner is not None and owner.signal is signal else None
            restored += 1
        for sensor_id, (seq, age_s, value, ts) in sensors.items():
            sensor = self.sensors.get(int(sensor_id))
            if sensor is not None and sensor.last_seq < 0:
                sensor.last_seq, sensor.last_seen = seq, now - age_s
                sensor.last_value, sensor.last_ts = value, ts
        return restored


class Subscription:
    """One subscriber: the signals it watches, its minimum interval, what changed since it was
    last told, and when its lease ends (a UDP subscriber renews by subscribing again)."""

    __slots__ = (
        "expires_at",
        "key",
        "last_sent",
        "min_interval_s",
        "pending",
        "signals",
        "tag",
    )

    def __init__(self, key: Any, signals: list[Signal], rate_hz: float, now: float,
                 lease_s: float, tag: Any) -> None:
        self.key = key
        self.signals = signals
        self.min_interval_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.last_sent = now
        self.pending: dict[str, Signal] = {}
        self.expires_at = now + lease_s
        self.tag = tag


class Subscriptions:
    """Subscribers of a ``SignalTree``. A subscriber gets every watched signal's current value when
    it subscribes, then the changed ones at most every 1/rate_hz (rate 0: as they come, one
    message per batch of changes)."""

    def __init__(self, max_subscribers: int = 256) -> None:
        self.by_key: dict[Any, Subscription] = {}
        self.dirty: set[Subscription] = set()
        self.max_subscribers = max_subscribers
        self.notifications = 0

    def __len__(self) -> int:
        return len(self.by_key)

    def subscribe(self, key: Any, signals: list[Signal], rate_hz: float, now: float, *,
                  lease_s: float = 30.0, tag: Any = None) -> list[tuple[Any, ...]]:
        """Add (or replace, renewing the lease) ``key``'s subscription; returns the current rows.
        Raises ``OverflowError`` past ``max_subscribers``."""
        self.unsubscribe(key)
        if len(self.by_key) >= self.max_subscribers:
            raise OverflowError(f"{self.max_subscribers} subscribers already")
        sub = self.by_key[key] = Subscription(key, signals, rate_hz, now, lease_s, tag)
        for signal in signals:
            signal.watchers.append(sub)
        return [signal.row(now) for signal in signals]

    def unsubscribe(self, key: Any) -> bool:
        sub = self.by_key.pop(key, None)
        if sub is None:
            return False
        for signal in sub.signals:
            signal.watchers.remove(sub)
        self.dirty.discard(sub)
        return True

    def changed(self, signal: Signal) -> None:
        for sub in signal.watchers:
            sub.pending[signal.path] = signal
            self.dirty.add(sub)

    def due(self, now: float) -> list[tuple[Subscription, list[tuple[Any, ...]]]]:
        """The subscriptions whose interval has passed and that have changes, with their rows;
        forgets subscriptions whose lease ended."""
        out = []
        for sub in list(self.dirty):
            if now >= sub.expires_at:
                self.unsubscribe(sub.key)
                continue
            if now - sub.last_sent < sub.min_interval_s:
                continue
            out.append((sub, [signal.row(now) for signal in sub.pending.values()]))
            sub.pending = {}
            sub.last_sent = now
            self.dirty.discard(sub)
        self.notifications += len(out)
        return out

    def expire(self, now: float) -> int:
        """Forget subscriptions whose lease ended (also those with nothing pending)."""
        gone = [key for key, sub in self.by_key.items() if now >= sub.expires_at]
        for key in gone:
            self.unsubscribe(key)
        return len(gone)
