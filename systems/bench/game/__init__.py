"""``ptr bench game``: bots play ptr's game server (``main``) and, in the same run, the same bots
play a framework-free server with the same rules and wire format (``bare``)."""

from systems.bench.game.main import CpuPlan, bench_settings, bench_tree, measure, measure_bare, run

__all__ = ["CpuPlan", "bench_settings", "bench_tree", "measure", "measure_bare", "run"]
