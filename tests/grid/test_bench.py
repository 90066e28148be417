"""``ptr bench grid`` runs small and reports each figure beside its bare baseline."""

from __future__ import annotations

from systems.bench.grid import run
from tests.support.services import NATS, require_service


def test_the_benchmark_runs_small_and_loses_nothing_through_a_kill() -> None:
    require_service(*NATS)
    result = run(seconds=1.5, sensors=8, batch=5, connections=8)
    for key in ("acked_readings_per_s", "ack_p99_ms", "daily_job_rows_per_s", "acked_lost",
                "duplicated", "bare_acked_readings_per_s", "bare_ack_p99_ms",
                "ratio_acked_readings_per_s"):
        assert key in result, key
    assert result["acked"] > 0 and result["bare_acked"] > 0
    assert result["killed_gateway_pid"] and result["daily_job_verified"]
    assert result["acked_lost"] == 0 and result["duplicated"] == 0
    assert result["log_entries"] >= result["acked"]
