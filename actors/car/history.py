"""The history of the car's signals in the database: one row per accepted sensor sample.

``message_id`` is ``sensor-seq-ts``: both members of the pair send every row, and the ``Batcher``'s
idempotent write keeps the first copy only.
"""

from __future__ import annotations

import sqlalchemy as sa

from actors.storage import RecordTable

__all__ = ["HISTORY_TABLE"]

HISTORY_TABLE = RecordTable("car_history", {
    "path": sa.String(128), "sensor": sa.Integer(), "seq": sa.BigInteger(), "ts": sa.Float(),
    "value": sa.Float(), "owned": sa.Boolean()})
