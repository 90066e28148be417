"""``ptr bench credit``: ranked searches over ``offers`` stored offers through ptr's search API
beside the same SQL behind a bare aiohttp server, quota violations over a simulated month at
accelerated time, and the share of fresh offers returned."""

from systems.bench.credit.main import TARGETS, run

__all__ = ["TARGETS", "run"]
