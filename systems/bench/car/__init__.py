"""``ptr bench car``: the car's sensors over UDP into the holder pair (``main``), and in the same
run into a bare asyncio process doing the same decode-apply-notify (``bare``); ``helpers`` holds
the load and the measuring subscriber."""

from systems.bench.car.main import TARGETS, measure_bare, measure_ptr, run

__all__ = ["TARGETS", "measure_bare", "measure_ptr", "run"]
