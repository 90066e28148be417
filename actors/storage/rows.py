"""Idempotent batched writes: a batch is one transaction, and a row whose ``message_id`` is already
stored is skipped, so a writer that retries a batch after a crash never duplicates a record."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeEngine

from actors.storage.faults import storage_error
from protocols.errors import StorageError

ColumnType: TypeAlias = TypeEngine[Any] | type[TypeEngine[Any]]
"""A SQLAlchemy column type, as a class (``sa.Integer``) or an instance (``sa.String(40)``)."""

KEY_COLUMN = "message_id"

# Portable identifiers: no quoting surprises, and within PostgreSQL's 63-byte limit.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class RecordTable:
    """A table of records keyed by ``message_id`` (a string primary key added for you).

    ``columns`` maps each other column's name to its type; every such column is nullable. Invalid
    names raise ValueError when the description is built, not when the first batch is written.
    """

    name: str
    columns: Mapping[str, ColumnType] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_identifier("table name", self.name)
        for column, column_type in self.columns.items():
            _check_identifier(f"column name in table {self.name!r}", column)
            if column == KEY_COLUMN:
                raise ValueError(f"table {self.name!r}: {KEY_COLUMN!r} is added for you; do not declare it")
            if not _is_column_type(column_type):
                raise ValueError(
                    f"table {self.name!r}: column {column!r} has type {column_type!r}, "
                    "not a SQLAlchemy type"
                )
        object.__setattr__(self, "columns", dict(self.columns))

    def to_table(self, metadata: sa.MetaData) -> sa.Table:
        """The SQLAlchemy Core table this description stands for, added to ``metadata``."""
        return sa.Table(
            self.name,
            metadata,
            sa.Column(KEY_COLUMN, sa.String(), primary_key=True),
            *(sa.Column(name, column_type, nullable=True) for name, column_type in self.columns.items()),
        )


class RowWriter:
    """Writes batches of rows (dicts keyed by column name) into one :class:`RecordTable`.

    Every row of a batch must have the keys of its first row, which must include ``message_id``;
    columns left out are stored as NULL. Each batch is one transaction and one ``executemany``:

    * SQLite: the ``INSERT .. ON CONFLICT DO NOTHING`` is compiled once per key set and run through
      the driver with positional tuples (SQLAlchemy's bind processors applied by hand). Letting
      SQLAlchemy build parameters row by row costs over half the throughput, and the new-row count
      comes straight from sqlite3's rowcount.
    * PostgreSQL: SQLAlchemy's "insertmanyvalues" executemany with ``RETURNING message_id``, because
      psycopg reports no rowcount for a batched insert; the returned ids are the new rows.
    """

    def __init__(self, engine: sa.Engine, table: RecordTable) -> None:
        self.engine = engine
        self.record_table = table
        self.table = table.to_table(sa.MetaData())
        self._insert = _insert_ignoring_duplicates(engine.dialect.name, self.table)
        self._returning_insert = self._insert.returning(self.table.c[KEY_COLUMN])
        self._columns = frozenset(self.table.columns.keys())
        self._sqlite_plans: dict[frozenset[str], _SqlitePlan] = {}

    def create(self) -> None:
        """Create the table unless it exists. Raises StorageError if the database refuses.

        Safe when several processes create it at once (each checks, then creates): the create
        that loses the race fails on a table that exists by then, which is success.
        """
        try:
            self.table.create(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            if not self.exists():
                raise storage_error(exc, f"could not create table {self.table.name!r}") from exc

    def exists(self) -> bool:
        """Whether the table exists; False too when the database cannot say."""
        try:
            return sa.inspect(self.engine).has_table(self.table.name)
        except SQLAlchemyError:
            return False

    def drop(self) -> None:
        """Drop the table if it exists (tests and retention jobs)."""
        try:
            self.table.drop(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not drop table {self.table.name!r}") from exc

    def write_batch(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows`` in one transaction and return how many were new.

        Rows whose ``message_id`` is already stored (or repeated earlier in the batch) are skipped.
        If any row fails, the whole batch is rolled back and StorageError says why
        (``StorageUnavailableError`` for a full disk, a read-only file, a server gone); retrying the
        same batch is always safe.
        """
        if not rows:
            return 0
        keys = self._check_keys(rows[0])
        try:
            with self.engine.begin() as connection:
                if self.engine.dialect.name == "sqlite":
                    return self._write_sqlite(connection, keys, rows)
                return len(connection.execute(self._returning_insert, list(rows)).all())
        except SQLAlchemyError as exc:
            raise storage_error(
                exc, f"batch of {len(rows)} rows into {self.table.name!r} was rolled back"
            ) from exc

    def _write_sqlite(
        self, connection: sa.Connection, keys: frozenset[str], rows: Sequence[Mapping[str, Any]]
    ) -> int:
        plan = self._sqlite_plans.get(keys)
        if plan is None:
            plan = self._sqlite_plans[keys] = _SqlitePlan.build(self._insert, self.table, keys, self.engine)
        try:
            parameters = plan.parameters(rows)
        except KeyError as exc:
            raise StorageError(
                f"every row for {self.table.name!r} needs the first row's keys {sorted(keys)}; "
                f"a row lacks {exc.args[0]!r}"
            ) from None
        return connection.exec_driver_sql(plan.sql, parameters).rowcount

    def _check_keys(self, row: Mapping[str, Any]) -> frozenset[str]:
        """Check the first row only: the statement is compiled from its keys, and a later row that
        lacks one of them fails the batch anyway, so checking every row here would only cost time."""
        keys = frozenset(row)
        if KEY_COLUMN not in keys:
            raise StorageError(f"rows for {self.table.name!r} need a {KEY_COLUMN!r} key; got {sorted(keys)}")
        unknown = keys - self._columns
        if unknown:
            raise StorageError(f"table {self.table.name!r} has no columns {sorted(unknown)}")
        return keys


@dataclass(frozen=True)
class _SqlitePlan:
    """A compiled SQLite insert for one key set, and how to turn a dict row into its parameters."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def build(
        cls, insert: sa.Insert, table: sa.Table, keys: frozenset[str], engine: sa.Engine
    ) -> _SqlitePlan:
        dialect = engine.dialect
        column_keys = [column.key for column in table.columns if column.key in keys]
        compiled = insert.compile(dialect=dialect, column_keys=column_keys)
        names = tuple(compiled.positiontup or ())
        processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        return cls(str(compiled), names, processors)

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Positional tuples for ``executemany``; raises KeyError naming a missing key."""
        if any(self.processors):
            return [
                tuple(process(row[name]) if process else row[name]
                      for name, process in zip(self.names, self.processors, strict=True))
                for row in rows
            ]
        if len(self.names) == 1:
            (name,) = self.names
            return [(row[name],) for row in rows]
        take = itemgetter(*self.names)
        return [take(row) for row in rows]


def _insert_ignoring_duplicates(dialect: str, table: sa.Table) -> sa.Insert:
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[KEY_COLUMN])
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[KEY_COLUMN])
    raise ValueError(f"RowWriter supports sqlite and postgresql, not {dialect!r}")


def _check_identifier(kind: str, value: str) -> None:
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise ValueError(f"{kind} {value!r} must be a letter or _ then up to 62 letters, digits or _")


def _is_column_type(value: object) -> bool:
    return isinstance(value, TypeEngine) or (isinstance(value, type) and issubclass(value, TypeEngine))
