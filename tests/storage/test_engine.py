"""make_engine: an embedded SQLite file that needs no set-up and is tuned for concurrent durable
writes, PostgreSQL through psycopg 3, and a clear ConfigError for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from actors.storage import DEFAULT_URL, default_url, make_engine
from protocols.errors import ConfigError


def test_the_default_url_is_a_sqlite_file_under_var() -> None:
    assert DEFAULT_URL == "sqlite:///var/ptr.db"
    assert default_url("/srv/ptr") == "sqlite:////srv/ptr/ptr.db"


def test_a_sqlite_engine_creates_missing_parent_directories(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    engine = make_engine(default_url(data_dir))
    with engine.connect() as connection:
        connection.execute(sa.text("select 1"))
    assert (data_dir / "ptr.db").is_file()
    engine.dispose()


def test_every_sqlite_connection_uses_wal_normal_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(default_url(tmp_path))
    with engine.connect() as connection:
        pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "synchronous", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 5000}
    engine.dispose()


def test_a_plain_postgresql_url_uses_psycopg_3() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")  # no connection is made
    assert engine.dialect.driver == "psycopg"


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "not a url"])
def test_an_unsupported_or_malformed_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="URL"):
        make_engine(url)
