"""The game's own Prometheus families: players, rooms, inputs/s, tick quantiles, and counters that
stay monotonic while ``status`` (``ptr run``'s line) closes one stats window after another."""

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
