"""A region's database: its banks, their offers (each with when it was observed and by which fetch),
the fetchers' saved state, and a version that moves whenever what a search can return changes.

One SQLite file per region by default (``region_url``); with a ``postgresql://`` URL every region is
a schema ``credit_<region>`` of that database (each connection's ``search_path``), created on first
use. ``RegionStore`` is plain: the region's fetcher host writes it, the search API reads it.

A fetch whose offers are unchanged only moves their ``observed_at``/``fetch_id``; a fetch that
changes them, or a bank whose status changes (ok, retrying, outage), bumps the region's version in
the same transaction: the search cache keys on it, so that is the invalidation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actors.storage import make_engine
from protocols.credit import BankConfig, Offer, band_rank

__all__ = ["CHANGES_KEPT", "OFFER_COLUMNS", "RegionStore", "changes_table", "envelope_table",
           "metadata", "offers_table", "rebuild_envelope", "region_url", "widen_envelope"]

metadata = sa.MetaData()

OFFER_COLUMNS = ("bank_id", "product_id", "lender", "product", "product_type", "country",
                 "min_amount", "max_amount", "min_term", "max_term", "apr", "upfront_fee",
                 "monthly_fee", "origination_pct", "min_income", "min_age", "max_age",
                 "min_rank", "observed_at", "fetch_id")

offers_table = sa.Table(
    "offers", metadata,
    sa.Column("bank_id", sa.String(32), primary_key=True),
    sa.Column("product_id", sa.String(64), primary_key=True),
    sa.Column("lender", sa.String(200), nullable=False),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("product_type", sa.String(16), nullable=False),
    sa.Column("country", sa.String(8), nullable=False),
    sa.Column("min_amount", sa.Float, nullable=False),
    sa.Column("max_amount", sa.Float, nullable=False),
    sa.Column("min_term", sa.Integer, nullable=False),
    sa.Column("max_term", sa.Integer, nullable=False),
    sa.Column("apr", sa.Float, nullable=False),
    sa.Column("upfront_fee", sa.Float, nullable=False),
    sa.Column("monthly_fee", sa.Float, nullable=False),
    sa.Column("origination_pct", sa.Float, nullable=False),
    sa.Column("min_income", sa.Float, nullable=False),
    sa.Column("min_age", sa.Integer, nullable=False),
    sa.Column("max_age", sa.Integer, nullable=False),
    sa.Column("min_rank", sa.Integer, nullable=False),
    sa.Column("observed_at", sa.Float, nullable=False),
    sa.Column("fetch_id", sa.String(64), nullable=False),
)
# the search reads offers in rate order (``actors.credit.search.ranked_search``); the index carries
# the eligibility columns so that rows are filtered before the table is read
sa.Index("offers_by_rate_v2", offers_table.c.apr, offers_table.c.min_amount,
         offers_table.c.max_amount, offers_table.c.min_term, offers_table.c.max_term,
         offers_table.c.min_income, offers_table.c.min_rank, offers_table.c.min_age,
         offers_table.c.max_age, offers_table.c.upfront_fee, offers_table.c.monthly_fee,
         offers_table.c.origination_pct, offers_table.c.product_type)

banks_table = sa.Table(
    "banks", metadata,
    sa.Column("bank_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("country", sa.String(8), nullable=False),
    sa.Column("tz", sa.String(64), nullable=False),
    sa.Column("interval_s", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("observed_at", sa.Float, nullable=False),
    sa.Column("fetch_id", sa.String(64), nullable=False),
    sa.Column("offers_hash", sa.String(64), nullable=False),
)

fetch_state_table = sa.Table(
    "fetch_state", metadata,
    sa.Column("bank_id", sa.String(32), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
)

envelope_table = sa.Table(
    "region_envelope", metadata,
    sa.Column("key", sa.String(8), primary_key=True),
    sa.Column("min_amount", sa.Float, nullable=False),
    sa.Column("max_amount", sa.Float, nullable=False),
    sa.Column("min_term", sa.Integer, nullable=False),
    sa.Column("max_term", sa.Integer, nullable=False),
    sa.Column("min_income", sa.Float, nullable=False),
    sa.Column("min_rank", sa.Integer, nullable=False),
    sa.Column("min_age", sa.Integer, nullable=False),
    sa.Column("max_age", sa.Integer, nullable=False),
)
"""Bounds that hold every offer ever stored in the region (widened on insert, never narrowed): a
search outside them has no eligible offer and is answered without reading the offers."""

meta_table = sa.Table(
    "region_meta", metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

changes_table = sa.Table(
    "region_changes", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("bank_id", sa.String(32), primary_key=True),
)
"""What each version changed: one row per bank whose offers it replaced, or one row with an empty
``bank_id`` for a version that only moved banks' statuses. Every version has at least one row, so a
reader at version ``v`` that finds rows ``v + 1 ...`` knows exactly which banks to read again; the
oldest rows go after ``CHANGES_KEPT`` versions (a reader further behind reads everything)."""

CHANGES_KEPT = 10_000


_TOUCH_OFFERS = offers_table.update().where(offers_table.c.bank_id == sa.bindparam("b_id")).values(
    observed_at=sa.bindparam("at"), fetch_id=sa.bindparam("f_id"))
_TOUCH_BANK = banks_table.update().where(banks_table.c.bank_id == sa.bindparam("b_id")).values(
    observed_at=sa.bindparam("at"), fetch_id=sa.bindparam("f_id"),
    offers_hash=sa.bindparam("digest"))
# the reads every search makes, as plain statements (a Core select is rebuilt and looked up in
# the compiled cache at each call: ~0.4 ms of a ~3 ms search)
_VERSION = sa.text("SELECT value FROM region_meta WHERE key = 'version'")
_BANKS_BY_ID = sa.text("SELECT bank_id, status, observed_at, fetch_id, interval_s FROM banks "
                       "WHERE bank_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
_SET_STATUS = banks_table.update().where(banks_table.c.bank_id == sa.bindparam("b_id")).values(
    status=sa.bindparam("status"))


def region_url(base_url: str, data_dir: str, region: str) -> str:
    """Where a region lives: a SQLite file ``credit-<region>.db`` under ``data_dir`` unless
    ``base_url`` names a database (PostgreSQL: one schema per region, see ``RegionStore``)."""
    if base_url:
        return base_url
    return f"sqlite:///{Path(data_dir) / f'credit-{region.lower()}.db'}"


def offer_row(offer: Offer, observed_at: float, fetch_id: str) -> dict[str, Any]:
    row = offer.model_dump(exclude={"region", "min_score_band"})
    row.update(min_rank=band_rank(offer.min_score_band), observed_at=observed_at,
               fetch_id=fetch_id)
    return row


def offers_hash(offers: Iterable[Offer]) -> str:
    text = json.dumps(sorted(o.model_dump_json() for o in offers))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_LOW = ("min_amount", "min_term", "min_income", "min_rank", "min_age")
_HIGH = ("max_amount", "max_term", "max_age")


def widen_envelope(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Widen the region's envelope to hold ``rows`` (offer rows just inserted)."""
    current = conn.execute(sa.select(envelope_table).where(envelope_table.c.key == "all")).first()
    bounds = {k: min(r[k] for r in rows) for k in _LOW}
    bounds.update({k: max(r[k] for r in rows) for k in _HIGH})
    if current is None:
        conn.execute(envelope_table.insert().values(key="all", **bounds))
        return
    old = current._mapping
    merged = {k: min(bounds[k], old[k]) for k in _LOW}
    merged.update({k: max(bounds[k], old[k]) for k in _HIGH})
    if merged != {k: old[k] for k in merged}:
        conn.execute(envelope_table.update().where(envelope_table.c.key == "all").values(**merged))


def rebuild_envelope(conn: sa.Connection) -> None:
    """The envelope of every stored offer (after a bulk load that bypassed ``apply``)."""
    o = offers_table.c
    row = conn.execute(sa.select(
        sa.func.min(o.min_amount), sa.func.max(o.max_amount), sa.func.min(o.min_term),
        sa.func.max(o.max_term), sa.func.min(o.min_income), sa.func.min(o.min_rank),
        sa.func.min(o.min_age), sa.func.max(o.max_age))).first()
    conn.execute(envelope_table.delete())
    if row is not None and row[0] is not None:
        conn.execute(envelope_table.insert().values(
            key="all", min_amount=row[0], max_amount=row[1], min_term=row[2], max_term=row[3],
            min_income=row[4], min_rank=row[5], min_age=row[6], max_age=row[7]))


def _search_path(schema: str) -> Any:
    """Every connection of a PostgreSQL region reads and writes its schema (plain SQL too)."""
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET search_path TO "{schema}"')
        dbapi_connection.commit()
    return on_connect


class RegionStore:
    """One region's tables. ``url`` is SQLite (a file for this region) or PostgreSQL (this region
    is the schema ``credit_<region>``)."""

    def __init__(self, url: str, region: str) -> None:
        self.region = region
        engine = make_engine(url)
        self.schema: str | None = None
        if engine.dialect.name == "postgresql":
            self.schema = f"credit_{region.lower()}"
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            except sa.exc.IntegrityError:
                pass  # another process created it at the same moment
            engine.dispose()
            sa.event.listen(engine, "connect", _search_path(self.schema))
        self.engine = engine
        try:
            self._create()
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            self._create()  # the region's host and the API create the tables at the same time

    def _create(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(meta_table.c.value).where(
                    meta_table.c.key == "version")).first() is None:
                conn.execute(meta_table.insert().values(key="version", value=0))

    def dispose(self) -> None:
        self.engine.dispose()

    # --- banks and fetcher state ------------------------------------------------------------------

    def register_banks(self, banks: Iterable[BankConfig]) -> None:
        """Add banks not yet known (status ``unknown``, nothing observed)."""
        with self.engine.begin() as conn:
            known = {r[0] for r in conn.execute(sa.select(banks_table.c.bank_id))}
            rows = [{"bank_id": b.bank_id, "name": b.name, "country": b.country, "tz": b.tz,
                     "interval_s": b.interval_s, "status": "unknown", "observed_at": 0.0,
                     "fetch_id": "", "offers_hash": ""} for b in banks if b.bank_id not in known]
            if rows:
                conn.execute(banks_table.insert(), rows)

    def load_states(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {bank_id: json.loads(state) for bank_id, state in conn.execute(
                sa.select(fetch_state_table.c.bank_id, fetch_state_table.c.state))}

    def save_states(self, states: dict[str, dict[str, Any]]) -> None:
        if not states:
            return
        with self.engine.begin() as conn:
            conn.execute(fetch_state_table.delete().where(
                fetch_state_table.c.bank_id.in_(list(states))))
            conn.execute(fetch_state_table.insert(), [
                {"bank_id": k, "state": json.dumps(v)} for k, v in states.items()])

    # --- what fetches found -----------------------------------------------------------------------

    def apply(self, observed: list[tuple[str, list[Offer], str, float]],
              statuses: dict[str, str]) -> int:
        """Store fetched offers (``(bank_id, offers, fetch_id, observed_at)``) and bank statuses in
        one transaction; returns how many banks changed (offers or status). Bumps the version if
        any did."""
        changed = 0
        replaced: list[str] = []
        touched: list[dict[str, Any]] = []
        inserted: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            current = {r.bank_id: r for r in conn.execute(sa.select(
                banks_table.c.bank_id, banks_table.c.status, banks_table.c.offers_hash))}
            for bank_id, offers, fetch_id, at in observed:
                digest = offers_hash(offers)
                row = current.get(bank_id)
                touched.append({"b_id": bank_id, "at": at, "f_id": fetch_id, "digest": digest})
                if row is not None and row.offers_hash == digest:
                    continue
                changed += 1
                replaced.append(bank_id)
                conn.execute(offers_table.delete().where(offers_table.c.bank_id == bank_id))
                if offers:
                    rows = [offer_row(o, at, fetch_id) for o in offers]
                    conn.execute(offers_table.insert(), rows)
                    inserted.extend(rows)
            if inserted:
                widen_envelope(conn, inserted)
            if touched:
                conn.execute(_TOUCH_OFFERS, touched)
                conn.execute(_TOUCH_BANK, touched)
            moved = [{"b_id": b, "status": s} for b, s in statuses.items()
                     if b in current and current[b].status != s]
            if moved:
                changed += len(moved)
                conn.execute(_SET_STATUS, moved)
            if changed:
                version = conn.execute(
                    meta_table.update().where(meta_table.c.key == "version")
                    .values(value=meta_table.c.value + 1).returning(meta_table.c.value)
                ).scalar_one()
                conn.execute(changes_table.insert(), [
                    {"version": version, "bank_id": b} for b in sorted(set(replaced)) or [""]])
                conn.execute(changes_table.delete().where(
                    changes_table.c.version <= version - CHANGES_KEPT))
        return changed

    # --- reads ------------------------------------------------------------------------------------

    def version(self, conn: sa.Connection | None = None) -> int:
        """The region's version (on ``conn`` if given: a search reads several things on one)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.version(own)
        return int(conn.execute(_VERSION).scalar_one())

    def changes_since(self, version: int) -> tuple[int, list[tuple[int, str]]] | None:
        """(the current version, the change rows after ``version`` in version order), or None when
        some of those versions' rows are gone (pruned, or written before the log existed): the
        reader must read everything again."""
        with self.engine.connect() as conn:
            current = self.version(conn)
            rows = [(int(v), str(b)) for v, b in conn.execute(
                sa.select(changes_table.c.version, changes_table.c.bank_id)
                .where(changes_table.c.version > version).order_by(changes_table.c.version))]
        seen = {v for v, _ in rows}
        if current > version and seen != set(range(version + 1, max(seen | {current}) + 1)):
            return None
        return max(seen | {current}), rows

    def bank_rows(self, bank_ids: Iterable[str],
                  conn: sa.Connection | None = None) -> dict[str, Any]:
        """Each bank's status, when it was last observed and by which fetch, read now."""
        ids = sorted(set(bank_ids))
        if not ids:
            return {}
        if conn is None:
            with self.engine.connect() as own:
                return self.bank_rows(ids, own)
        return {r.bank_id: r for r in conn.execute(_BANKS_BY_ID, {"ids": ids})}

    def offer_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(offers_table))
                       .scalar_one())
