"""The embedded durable log: three SQLite tables behind :class:`~actors.storage.log.DurableLog`."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.exc import SQLAlchemyError

from actors.storage.engine import make_engine
from actors.storage.faults import storage_error
from actors.storage.log import DurableLog, LogEntry

_METADATA = sa.MetaData()

# One row per topic holding its last offset: appends bump it with an upsert, so the first statement of
# every append is a write and concurrent appenders queue on SQLite's write lock (busy_timeout) instead
# of racing on max(offset).
_TOPICS = sa.Table(
    "ptr_log_topics",
    _METADATA,
    sa.Column("topic", sa.String(), primary_key=True),
    sa.Column("end_offset", sa.Integer(), nullable=False),
)
_ENTRIES = sa.Table(
    "ptr_log_entries",
    _METADATA,
    sa.Column("topic", sa.String(), primary_key=True),
    sa.Column("entry_offset", sa.Integer(), primary_key=True),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("appended_at", sa.Float(), nullable=False),
)
_COMMITS = sa.Table(
    "ptr_log_commits",
    _METADATA,
    sa.Column("group_name", sa.String(), primary_key=True),
    sa.Column("topic", sa.String(), primary_key=True),
    sa.Column("committed_offset", sa.Integer(), nullable=False),
)

# Sequenced appends: the highest sequence number stored per (topic, key).
_SEQUENCES = sa.Table(
    "ptr_log_sequences",
    _METADATA,
    sa.Column("topic", sa.String(), primary_key=True),
    sa.Column("seq_key", sa.String(), primary_key=True),
    sa.Column("last_seq", sa.Integer(), nullable=False),
)
_NEW_SEQUENCE = insert(_SEQUENCES)
_SET_SEQUENCE = _NEW_SEQUENCE.on_conflict_do_update(
    index_elements=[_SEQUENCES.c.topic, _SEQUENCES.c.seq_key],
    set_={"last_seq": _NEW_SEQUENCE.excluded.last_seq},
)
_KEY_CHUNK = 500  # keys per IN (...) lookup, below SQLite's bound-parameter limit

_NEW_TOPIC = insert(_TOPICS)
_BUMP_END = _NEW_TOPIC.on_conflict_do_update(
    index_elements=[_TOPICS.c.topic],
    set_={"end_offset": _TOPICS.c.end_offset + _NEW_TOPIC.excluded.end_offset},
).returning(_TOPICS.c.end_offset)

# Reads are built once with bound parameters: building a select per call cost more than running it
_READ = (
    sa.select(_ENTRIES.c.entry_offset, _ENTRIES.c.payload, _ENTRIES.c.appended_at)
    .where(_ENTRIES.c.topic == sa.bindparam("topic"),
           _ENTRIES.c.entry_offset >= sa.bindparam("from_offset"))
    .order_by(_ENTRIES.c.entry_offset)
    .limit(sa.bindparam("max_count", type_=sa.Integer()))
)
_COMMITTED = sa.select(_COMMITS.c.committed_offset).where(
    _COMMITS.c.group_name == sa.bindparam("group"), _COMMITS.c.topic == sa.bindparam("topic"))
_END = sa.select(_TOPICS.c.end_offset).where(_TOPICS.c.topic == sa.bindparam("topic"))

_NEW_COMMIT = insert(_COMMITS)
_COMMIT = _NEW_COMMIT.on_conflict_do_update(
    index_elements=[_COMMITS.c.group_name, _COMMITS.c.topic],
    set_={"committed_offset": _NEW_COMMIT.excluded.committed_offset},
)


class SqliteLog(DurableLog):
    """A durable log in a SQLite database (the embedded default; see ``engine.DEFAULT_URL``).

    Given a URL it makes and owns its engine (disposed on close); given an engine it only borrows it.
    An append is one transaction: all its payloads are stored, or none. Timestamps are this
    process's wall clock at append. ``synchronous="FULL"`` (from a URL) fsyncs every append
    before it returns: durable through an OS crash, not only a process crash.
    """

    def __init__(self, engine_or_url: sa.Engine | str, *, synchronous: str = "NORMAL") -> None:
        if isinstance(engine_or_url, str):
            self.engine = make_engine(engine_or_url, synchronous=synchronous)
            self._owns_engine = True
        else:
            self.engine = engine_or_url
            self._owns_engine = False
        if self.engine.dialect.name != "sqlite":
            raise ValueError(f"SqliteLog needs a sqlite engine, not {self.engine.dialect.name!r}")
        try:
            _METADATA.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not create the log tables in {self.engine.url}") from exc

    def _append(self, topic: str, payloads: list[bytes]) -> list[int]:
        now = time.time()
        try:
            with self.engine.begin() as connection:
                bump = {"topic": topic, "end_offset": len(payloads)}
                end = connection.execute(_BUMP_END, bump).scalar_one()
                first = end - len(payloads) + 1
                offsets = list(range(first, end + 1))
                connection.execute(
                    _ENTRIES.insert(),
                    [
                        {"topic": topic, "entry_offset": offset, "payload": payload, "appended_at": now}
                        for offset, payload in zip(offsets, payloads, strict=True)
                    ],
                )
        except SQLAlchemyError as exc:
            raise storage_error(
                exc, f"append of {len(payloads)} payloads to topic {topic!r} failed"
            ) from exc
        return offsets

    def _append_sequenced(self, topic: str, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        now = time.time()
        try:
            with self.engine.begin() as connection:
                # A write first: it takes SQLite's write lock, so the check below and the append
                # are one serialised step across every process appending to this file.
                end = connection.execute(_BUMP_END, {"topic": topic, "end_offset": 0}).scalar_one()
                keys = sorted({key for key, _seq, _payload in items})
                last: dict[str, int] = {}
                for start in range(0, len(keys), _KEY_CHUNK):
                    chunk = keys[start:start + _KEY_CHUNK]
                    query = sa.select(_SEQUENCES.c.seq_key, _SEQUENCES.c.last_seq).where(
                        _SEQUENCES.c.topic == topic, _SEQUENCES.c.seq_key.in_(chunk))
                    last.update((row.seq_key, row.last_seq) for row in connection.execute(query))
                offsets: list[int | None] = []
                rows: list[dict[str, Any]] = []
                for key, seq, payload in items:
                    if seq <= last.get(key, 0):
                        offsets.append(None)
                        continue
                    last[key] = seq
                    end += 1
                    offsets.append(end)
                    rows.append({"topic": topic, "entry_offset": end, "payload": payload,
                                 "appended_at": now})
                if rows:
                    connection.execute(_BUMP_END, {"topic": topic, "end_offset": len(rows)})
                    connection.execute(_ENTRIES.insert(), rows)
                    changed = {key for (key, _s, _p), offset in zip(items, offsets, strict=True)
                               if offset is not None}
                    connection.execute(_SET_SEQUENCE, [{"topic": topic, "seq_key": key,
                                                        "last_seq": last[key]} for key in changed])
        except SQLAlchemyError as exc:
            raise storage_error(
                exc, f"sequenced append of {len(items)} payloads to topic {topic!r} failed"
            ) from exc
        return offsets

    def _read(self, topic: str, from_offset: int, max_count: int) -> list[LogEntry]:
        rows = self._fetch(_READ, f"read of topic {topic!r}",
                           {"topic": topic, "from_offset": from_offset, "max_count": max_count})
        return [LogEntry(offset, payload, appended_at) for offset, payload, appended_at in rows]

    def _commit(self, group: str, topic: str, offset: int) -> None:
        try:
            with self.engine.begin() as connection:
                commit = {"group_name": group, "topic": topic, "committed_offset": offset}
                connection.execute(_COMMIT, commit)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"commit of group {group!r} on topic {topic!r} failed") from exc

    def _committed(self, group: str, topic: str) -> int:
        rows = self._fetch(_COMMITTED, f"committed offset of group {group!r} on topic {topic!r}",
                           {"group": group, "topic": topic})
        return rows[0][0] if rows else 0

    def _end_offset(self, topic: str) -> int:
        rows = self._fetch(_END, f"end of topic {topic!r}", {"topic": topic})
        return rows[0][0] if rows else 0

    def _truncate(self, topic: str, before_offset: int) -> None:
        # Freed pages are reused by later appends: the file stops growing instead of shrinking
        # (VACUUM would rewrite it under the write lock).
        delete = _ENTRIES.delete().where(_ENTRIES.c.topic == topic,
                                         _ENTRIES.c.entry_offset < before_offset)
        try:
            with self.engine.begin() as connection:
                connection.execute(delete)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"truncation of topic {topic!r} failed") from exc

    def _close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def _fetch(self, query: sa.Select[Any], what: str,
               params: dict[str, Any] | None = None) -> list[sa.Row[Any]]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(query, params or {}).all())
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"{what} failed") from exc
