"""``ptr bench credit`` at a tiny size: every figure is there, beside its bare baseline."""

from __future__ import annotations

from systems.bench.credit import run


def test_the_benchmark_runs_small_and_reports_each_figure_beside_its_baseline() -> None:
    result = run(offers=3_000, seconds=0.5, concurrency=2, sim_banks=6, days=1)
    for key in ("search_p50_ms", "search_p99_ms", "searches_per_s", "bare_search_p50_ms",
                "bare_search_p99_ms", "bare_searches_per_s", "bare_index_search_p99_ms",
                "bare_index_searches_per_s", "index_p99_ratio", "index_ready_s",
                "quota_violations", "fresh_ratio"):
        assert key in result, key
    assert result["searches_per_s"] > 0 and result["bare_searches_per_s"] > 0
    assert result["bare_index_searches_per_s"] > 0
    assert result["search_errors"] == 0 and result["bare_errors"] == 0
    assert result["bare_index_errors"] == 0
    assert result["quota_violations"] == 0 and result["quota_calls"] > 0
    assert 0 < result["fresh_ratio"] <= 1
