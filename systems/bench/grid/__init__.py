"""``ptr bench grid``: authenticated HTTPS readings through the grid's gateways with a SIGKILL of one
(``main``), and the same load through a bare aiohttp + token check + JetStream server (``bare``)."""

from systems.bench.grid.main import TARGETS, measure_bare, measure_ptr, run

__all__ = ["TARGETS", "measure_bare", "measure_ptr", "run"]
