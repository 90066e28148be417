"""The game's own Prometheus families: players, rooms, inputs/s, tick quantiles, a tick-duration
histogram, and counters that stay monotonic while ``status`` (``ptr run``'s line) closes one stats
window after another."""

from __future__ import annotations

import pytest
from prometheus_client.core import Metric

from systems.game import SYSTEM, status
from tests.support.game import settings, wait

pytestmark = pytest.mark.multiproc


def samples(families: list[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.name, tuple(sorted(s.labels.values()))): s.value for f in families
            for s in f.samples}


def test_ticks_count_on_across_status_windows(make_runtime, tmp_path) -> None:
    s = settings(tmp_path)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    assert SYSTEM.metrics is not None
    metrics = SYSTEM.metrics
    wait(lambda: samples(list(metrics(rt, s)))[("ptr_game_ticks_total", ("game-1",))] > 10,
         what="the first ticks")
    before = samples(list(metrics(rt, s)))
    assert before[("ptr_game_players", ("game-1",))] == 0
    assert before[("ptr_game_rooms", ("game-1",))] == 0
    assert before[("ptr_game_inputs_per_second", ("game-1",))] == 0
    assert ("ptr_game_tick_duration_quantile_seconds", ("0.99", "game-1")) in before
    assert "game-1:" in status(rt, s)  # closes the stats window: the counters carry on
    after = samples(list(metrics(rt, s)))
    for key in ("ticks", "late_ticks", "snapshots_sent", "inputs_received"):
        name = (f"ptr_game_{key}_total", ("game-1",))
        assert after[name] >= before[name], key
    ticks = ("ptr_game_ticks_total", ("game-1",))
    wait(lambda: samples(list(metrics(rt, s)))[ticks] > after[ticks], what="more ticks")


def test_tick_durations_are_a_histogram_that_parses_and_counts_every_tick(make_runtime,
                                                                          tmp_path) -> None:
    """Scraped as text and read back with the client library's parser: cumulative buckets up to
    +Inf, whose count is the ticks the server ran, and a sum of seconds below count x 1/60 s."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    s = settings(tmp_path)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    assert SYSTEM.metrics is not None
    metrics = SYSTEM.metrics

    class Game:
        def collect(self) -> list[Metric]:
            return list(metrics(rt, s))

    registry = CollectorRegistry()
    registry.register(Game())  # type: ignore[arg-type]

    def histogram() -> dict[str, float]:
        text = generate_latest(registry).decode()
        family = next(f for f in text_string_to_metric_families(text)
                      if f.name == "ptr_game_tick_duration_seconds")
        return {(x.labels.get("le") or x.name.rsplit("_", 1)[1]): x.value for x in family.samples}

    wait(lambda: histogram().get("+Inf", 0) > 30, what="half a second of ticks")
    h = histogram()
    bounds = [k for k in h if k not in ("+Inf", "count", "sum")]
    cumulative = [h[b] for b in sorted(bounds, key=float)] + [h["+Inf"]]
    assert cumulative == sorted(cumulative), "buckets are cumulative"
    assert h["count"] == h["+Inf"] > 30
    assert 0 < h["sum"] < h["count"] / 60, "each tick took less than its 16.7 ms slot"
