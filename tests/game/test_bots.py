"""What the bots measure: latency percentiles that merge exactly across bot processes."""

from __future__ import annotations

from actors.game.bots import LatencyHistogram


def test_percentiles_are_bin_upper_edges_and_slow_answers_count_as_overflow() -> None:
    histogram = LatencyHistogram()
    for ms in [1.0] * 98 + [5.04, 9999.0]:
        histogram.add(ms / 1000)
    assert histogram.percentile(0.50) == 1.1
    assert histogram.percentile(0.99) == 5.1
    assert histogram.percentile(1.0) == float("inf"), "an answer slower than 2 s is not lost"
    histogram.add(-0.001)  # the wall clock stepped back: counted at 0, never in a wrong bin
    assert histogram.bins[0] == 1


def test_histograms_of_two_processes_merge_into_the_histogram_of_all_samples() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for n in range(300):
        seconds = (n % 37) / 1000
        (a if n % 2 else b).add(seconds)
        both.add(seconds)
    merged = LatencyHistogram()
    for part in (a, b):
        merged.merge_sparse(part.sparse(), part.overflow)
    assert merged.bins == both.bins and merged.count == both.count == 300
    assert merged.percentile(0.99) == both.percentile(0.99)
