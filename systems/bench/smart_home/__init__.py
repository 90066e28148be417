"""``ptr bench smart-home``: a simulated house over HTTPS against ptr's smart home (``main``), and in
the same run against a bare aiohttp + SQLite monolith doing the same work."""

from systems.bench.smart_home.main import TARGETS, history_readings, measure_bare, measure_ptr, run

__all__ = ["TARGETS", "history_readings", "measure_bare", "measure_ptr", "run"]
