"""RowWriter: batches are idempotent (a row per message_id, however often it is written) and atomic,
on the embedded SQLite database and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from actors.storage import KEY_COLUMN, RecordTable, RowWriter, default_url, make_engine
from protocols.errors import StorageError
from tests.support.services import POSTGRES, require_service

POSTGRES_URL = os.environ.get("PTR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _events_table() -> RecordTable:
    return RecordTable(f"events_{uuid.uuid4().hex[:12]}", {"kind": sa.String(), "size": sa.Integer()})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def writer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RowWriter]:
    """A created, empty events table with a unique name, dropped afterwards."""
    if request.param == "postgresql":
        require_service(*POSTGRES)
        engine = make_engine(POSTGRES_URL)
    else:
        engine = make_engine(default_url(tmp_path / "data"))
    writer = RowWriter(engine, _events_table())
    writer.create()
    yield writer
    writer.drop()
    engine.dispose()


def _batch(ids: range | list[int]) -> list[dict[str, object]]:
    return [{KEY_COLUMN: f"m-{i}", "kind": "reading", "size": i} for i in ids]


def _stored(writer: RowWriter) -> dict[str, int]:
    with writer.engine.connect() as connection:
        rows = connection.execute(sa.select(writer.table.c[KEY_COLUMN], writer.table.c.size)).all()
    return {message_id: size for message_id, size in rows}


def test_a_new_batch_inserts_every_row_and_reports_the_count(writer: RowWriter) -> None:
    assert writer.write_batch(_batch(range(100))) == 100
    assert _stored(writer) == {f"m-{i}": i for i in range(100)}


def test_writing_the_same_batch_twice_leaves_one_row_each(writer: RowWriter) -> None:
    batch = _batch(range(50))
    assert writer.write_batch(batch) == 50
    assert writer.write_batch(batch) == 0
    assert _stored(writer) == {f"m-{i}": i for i in range(50)}


def test_an_overlapping_batch_inserts_only_the_new_rows(writer: RowWriter) -> None:
    writer.write_batch(_batch(range(0, 10)))
    assert writer.write_batch(_batch(range(5, 15))) == 5
    assert sorted(_stored(writer)) == sorted(f"m-{i}" for i in range(15))


def test_a_duplicate_inside_one_batch_is_stored_once_first_copy_wins(writer: RowWriter) -> None:
    batch = [
        {KEY_COLUMN: "m-1", "kind": "reading", "size": 1},
        {KEY_COLUMN: "m-1", "kind": "reading", "size": 999},
    ]
    assert writer.write_batch(batch) == 1
    assert _stored(writer) == {"m-1": 1}


def test_a_batch_that_fails_part_way_stores_nothing(writer: RowWriter) -> None:
    batch = _batch(range(5))
    batch[3] = {KEY_COLUMN: None, "kind": "reading", "size": 3}  # the primary key is NOT NULL
    with pytest.raises(StorageError, match="rolled back"):
        writer.write_batch(batch)
    assert _stored(writer) == {}


def test_columns_left_out_of_the_batch_are_stored_as_null(writer: RowWriter) -> None:
    assert writer.write_batch([{KEY_COLUMN: "m-1", "kind": "reading"}]) == 1
    with writer.engine.connect() as connection:
        assert connection.execute(sa.select(writer.table.c.size)).scalar_one() is None


def test_an_empty_batch_writes_nothing(writer: RowWriter) -> None:
    assert writer.write_batch([]) == 0
    assert _stored(writer) == {}


def test_a_row_without_message_id_is_refused(writer: RowWriter) -> None:
    with pytest.raises(StorageError, match=KEY_COLUMN):
        writer.write_batch([{"kind": "reading", "size": 1}])


def test_an_unknown_column_is_refused_by_name(writer: RowWriter) -> None:
    with pytest.raises(StorageError, match="colour"):
        writer.write_batch([{KEY_COLUMN: "m-1", "colour": "red"}])
    assert _stored(writer) == {}


def test_a_later_row_missing_a_key_fails_the_whole_batch(writer: RowWriter) -> None:
    batch: list[dict[str, object]] = [*_batch(range(3)), {KEY_COLUMN: "m-3", "kind": "reading"}]
    with pytest.raises(StorageError):
        writer.write_batch(batch)
    assert _stored(writer) == {}


def test_create_is_idempotent(writer: RowWriter) -> None:
    writer.write_batch(_batch(range(3)))
    writer.create()
    assert len(_stored(writer)) == 3


def test_a_sqlite_batch_is_one_executemany_in_one_transaction(tmp_path: Path) -> None:
    engine = make_engine(default_url(tmp_path))
    writer = RowWriter(engine, _events_table())
    writer.create()
    statements: list[tuple[str, bool]] = []
    commits: list[object] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _c, _cur, sql, _p, _ctx, many: statements.append((sql, many)))
    sa.event.listen(engine, "commit", commits.append)
    writer.write_batch(_batch(range(1000)))
    assert [many for _, many in statements] == [True]
    assert statements[0][0].startswith("INSERT")
    assert len(commits) == 1
    engine.dispose()


def test_typed_columns_are_converted_on_the_sqlite_fast_path(tmp_path: Path) -> None:
    engine = make_engine(default_url(tmp_path))
    writer = RowWriter(engine, RecordTable("typed", {"ok": sa.Boolean(), "body": sa.JSON()}))
    writer.create()
    writer.write_batch([{KEY_COLUMN: "m-1", "ok": True, "body": {"a": [1, 2]}}])
    with engine.connect() as connection:
        stored = connection.execute(sa.select(writer.table.c.ok, writer.table.c.body)).one()
    assert tuple(stored) == (True, {"a": [1, 2]})
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "columns", "complaint"),
    [
        ("events; drop table x", {}, "table name"),
        ("events", {"message_id": sa.String()}, "added for you"),
        ("events", {"bad name": sa.String()}, "column name"),
        ("events", {"size": int}, "not a SQLAlchemy type"),
    ],
)
def test_an_impossible_table_description_is_refused_when_built(
    name: str, columns: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        RecordTable(name, columns)  # type: ignore[arg-type]
