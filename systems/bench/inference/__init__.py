"""``ptr bench inference``: the prediction service under closed-loop clients with dynamic batching
and with batch size forced to 1 (same system, same workers), then under kill -9s of its workers,
then uploads of large images beside a bare file write (``main``)."""

from systems.bench.inference.main import FLOORS, measure_model, run

__all__ = ["FLOORS", "measure_model", "run"]
