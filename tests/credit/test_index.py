"""The search's in-memory index keeps up with the fetchers: after offers change, banks drop out or
appear and statuses move, it ranks exactly as the SQL does (itself checked against a plain
reference in ``test_search``), reading only the banks each version replaced; it merges its
segments, reads everything again when it missed versions, and steps aside for the SQL when the
database moved under it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from actors.clock import MockClock
from actors.credit import index as index_module
from actors.credit.index import OfferIndex
from actors.credit.search import LocalCache, SearchService, ranked_search, search_params
from actors.credit.store import RegionStore, changes_table, region_url
from actors.credit.world import generate_banks, offers_at
from protocols.credit import SCORE_BANDS, BankConfig, SearchQuery
from tests.support.observed import wait_until

T0 = 1_780_000_000.0
SIX_HOURS = 6 * 3600


def eu_world(tmp_path: Path, banks: int = 60) -> tuple[RegionStore, list[BankConfig]]:
    store = RegionStore(region_url("", str(tmp_path), "EU"), "EU")
    mine = [b for b in generate_banks(banks * 3, products=8) if b.region == "EU"]
    store.register_banks(mine)
    store.apply([(b.bank_id, offers_at(b, T0), f"f-{b.bank_id}", T0) for b in mine],
                {b.bank_id: "ok" for b in mine})
    return store, mine


def queries(seed: int, count: int = 60) -> list[SearchQuery]:
    rng = random.Random(seed)
    return [SearchQuery(
        amount=rng.choice((800, 3_000, 12_000, 45_000)), term_months=rng.choice((6, 12, 36, 60)),
        income=rng.choice((0, 1_000, 3_000, 9_000)), age=rng.choice((18, 40, 68)),
        score_band=rng.choice(SCORE_BANDS), region="EU",
        product_type=rng.choice((None, None, "car")), max_apr=rng.choice((None, None, 9.0)),
        page=rng.choice((1, 2)), page_size=rng.choice((3, 10)))  # type: ignore[arg-type]
        for _ in range(count)]


def by_sql(store: RegionStore, query: SearchQuery) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = ranked_search(lambda sql, p: list(conn.execute(sa.text(sql), p)),
                             search_params(query), lambda row: row.total_cost)
    return [(r.bank_id, r.product_id) for r in rows]


def assert_ranks_as_sql(index: OfferIndex, store: RegionStore, seed: int) -> int:
    found = 0
    for query in queries(seed):
        keys = index.ranked_keys(search_params(query))
        assert keys == by_sql(store, query), query
        found += len(keys or [])
    return found


def test_changed_dropped_and_new_banks_are_read_again_and_ranked_as_the_sql(
        tmp_path: Path) -> None:
    store, banks = eu_world(tmp_path)
    index = OfferIndex(store, merge_fraction=0.5)  # no merge here: the next test merges
    index.load()
    assert assert_ranks_as_sql(index, store, 1) > 50
    moved, emptied, late = banks[:5], banks[5:7], banks[-3:]
    store.apply([(b.bank_id, offers_at(b, T0 + SIX_HOURS, bump=3), "f-2", T0 + SIX_HOURS)
                 for b in moved] + [(b.bank_id, [], "f-2", T0 + SIX_HOURS) for b in emptied], {})
    store.apply([], {banks[9].bank_id: "outage"})  # a version that moved no offers
    assert index.ready_for(store.version()) and index.refreshes == 1 and index.loads == 1
    assert index.snapshot is not None and index.snapshot.version == store.version()
    assert len(index.snapshot.recent) == sum(len(offers_at(b, T0)) for b in moved)
    assert index.snapshot.main.dead() == len(index.snapshot.recent) + sum(
        len(offers_at(b, T0)) for b in emptied) and index.merges == 0
    assert assert_ranks_as_sql(index, store, 2) > 50
    store.apply([(b.bank_id, [], "f-3", T0) for b in late], {})
    store.apply([(b.bank_id, offers_at(b, T0, bump=7), "f-4", T0) for b in late + emptied], {})
    assert index.ready_for(store.version()) and index.loads == 1
    assert assert_ranks_as_sql(index, store, 3) > 50


def test_segments_merge_once_the_recent_one_grows(tmp_path: Path) -> None:
    store, banks = eu_world(tmp_path)
    index = OfferIndex(store, merge_fraction=0.1)
    index.load()
    for step, bank in enumerate(banks[:12], start=1):
        store.apply([(bank.bank_id, offers_at(bank, T0, bump=step), "f", T0)], {})
        assert index.ready_for(store.version())
    snapshot = index.snapshot
    assert snapshot is not None and index.merges >= 1
    assert snapshot.size == store.offer_count()
    assert len(snapshot.recent) <= 0.1 * len(snapshot.main)
    assert assert_ranks_as_sql(index, store, 4) > 50


def test_an_index_that_missed_versions_reads_everything_again_and_the_sql_answers_meanwhile(
        tmp_path: Path) -> None:
    store, banks = eu_world(tmp_path)
    service = SearchService({"EU": store}, LocalCache(), MockClock(T0), index=True)
    service.load_indexes()
    index = service.indexes["EU"]
    loads = index.loads
    store.apply([(banks[0].bank_id, offers_at(banks[0], T0, bump=1), "f", T0)], {})
    with store.engine.begin() as conn:  # as if this version's change rows had been pruned
        conn.execute(changes_table.delete())
    query = queries(5, 1)[0]
    page = service.search(query)
    assert service.by_index == 0, "the stale index was not used"
    assert [(r["offer"]["bank_id"], r["offer"]["product_id"]) for r in page["results"]] == \
        by_sql(store, query)[:query.page_size]
    wait_until(lambda: index.loads == loads + 1 and not index.loading, "the index read again", 10)
    assert index.snapshot is not None and index.snapshot.version == store.version()
    assert assert_ranks_as_sql(index, store, 6) > 50
    service.search(queries(7, 1)[0])
    assert service.by_index == 1
    service.close()


def test_a_page_whose_offers_left_the_database_is_ranked_by_the_sql(tmp_path: Path) -> None:
    store, _banks = eu_world(tmp_path)
    service = SearchService({"EU": store}, LocalCache(), MockClock(T0))
    service.load_indexes()
    query = SearchQuery(amount=3_000, term_months=12, income=9_000, age=40, score_band="A",
                        region="EU", page_size=5)
    first = service.search(query)["results"]
    assert service.by_index == 1 and first
    gone = first[0]["offer"]
    with store.engine.begin() as conn:  # a write the index cannot know of yet (same version)
        conn.execute(sa.text("DELETE FROM offers WHERE bank_id = :b AND product_id = :p"),
                     {"b": gone["bank_id"], "p": gone["product_id"]})
    rows = service.ranked_rows(query)
    assert service.by_index == 1, "the index's page named a missing offer: the SQL answered"
    assert [(r.bank_id, r.product_id) for r in rows] == by_sql(store, query)
    assert (gone["bank_id"], gone["product_id"]) not in [(r.bank_id, r.product_id) for r in rows]
    service.close()


def test_a_catch_up_reads_its_banks_a_slice_at_a_time_and_too_many_banks_read_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, banks = eu_world(tmp_path)
    index = OfferIndex(store, merge_fraction=0.9)
    index.load()
    monkeypatch.setattr(index_module, "_BANKS_A_READ", 2)      # 5 banks: three reads
    store.apply([(b.bank_id, offers_at(b, T0, bump=1), "f", T0) for b in banks[:5]], {})
    assert index.ready_for(store.version()) and index.refreshes == 1
    assert index.snapshot is not None and len(index.snapshot.recent) == sum(
        len(offers_at(b, T0)) for b in banks[:5])
    assert assert_ranks_as_sql(index, store, 8) > 50
    monkeypatch.setattr(index_module, "REFRESH_BANKS_MAX", 3)  # 4 banks: read everything
    store.apply([(b.bank_id, offers_at(b, T0, bump=2), "f", T0) for b in banks[5:9]], {})
    assert not index.ready_for(store.version()), "the SQL answers while the region is read"
    index.join(10)
    assert index.loads == 2 and index.ready_for(store.version()) and index.refreshes == 1
    assert assert_ranks_as_sql(index, store, 9) > 50
