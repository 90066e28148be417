"""The search: eligible offers ranked by total cost of credit, one SQL statement, and a cache.

Total cost of credit for an amount ``P`` over ``n`` months at a yearly rate ``apr`` (annuity,
monthly rate ``r = apr / 1200``): ``payment = P r / (1 - (1 + r)^-n)`` (``P / n`` at 0 %),
``interest = payment n - P``, and ``total_cost = interest + upfront_fee + monthly_fee n +
origination_pct P / 100``. The database computes it (SQLite and PostgreSQL both have ``pow``), sorts and
pages, in statements that read few rows however many offers there are (``ranked_search``):
the region's envelope (could anything be eligible?), the cheapest-rate eligible offers along the
rate index, then every eligible offer whose interest alone could still make the page. ``explain_cost`` recomputes the cost in Python for the
page's offers, with the text each result carries.

``SearchService`` answers a ``SearchQuery`` for its regions: reads the region's version, looks the
page up in the cache (``LocalCache`` in the process, or ``RedisCache``), and on a miss ranks by the
region's in-memory index (``actors.credit.index``: the same ranking, ~5x faster on average over
1,000,000 offers) once it has loaded and caught up with that version, else by ``ranked_search``.
The page's banks' status and ``observed_at`` are read at answer time, not cached: a bank in
outage is served from what was last fetched, with its age.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from actors.credit.index import OfferIndex, interest, rows_in_order
from actors.credit.store import RegionStore
from protocols.credit import SearchQuery, band_rank

__all__ = ["CANDIDATES_SQL", "ENVELOPE_SQL", "LocalCache", "RANKED_SQL", "RedisCache",
           "SEARCH_SQL", "SearchCache", "SearchService", "apr_bound", "explain_cost", "interest",
           "keyed_params", "keyed_rows_sql", "make_cache", "ranked_search", "search_params",
           "total_cost"]

_COST = """(CASE WHEN apr > 0
             THEN :amount * (apr / 1200.0) / (1 - pow(1 + apr / 1200.0, -:term)) * :term
             ELSE :amount END) - :amount
       + upfront_fee + monthly_fee * :term + origination_pct * :amount / 100.0"""
_COLUMNS = f"""bank_id, product_id, lender, product, product_type, country, min_amount, max_amount,
       min_term, max_term, apr, upfront_fee, monthly_fee, origination_pct, min_income, min_age,
       max_age, min_rank, observed_at, fetch_id, {_COST} AS total_cost"""
_ELIGIBLE = """min_amount <= :amount AND max_amount >= :amount
  AND min_term <= :term AND max_term >= :term
  AND min_income <= :income AND min_rank <= :rank
  AND min_age <= :age AND max_age >= :age
  AND (CAST(:product_type AS VARCHAR(16)) IS NULL OR product_type = :product_type)
  AND (CAST(:lender AS VARCHAR(200)) IS NULL OR lender = :lender)
  AND (CAST(:max_apr AS FLOAT) IS NULL OR apr <= :max_apr)"""

CANDIDATES_SQL = f"""
SELECT {_COLUMNS}
FROM offers
WHERE {_ELIGIBLE}
ORDER BY apr
LIMIT :candidates
"""
"""Step 1: ``candidates`` eligible offers of lowest rate, read in the rate index's order (the
database stops after that many eligible rows; which of equal rates does not matter)."""

RANKED_SQL = f"""
SELECT {_COLUMNS}
FROM offers
WHERE apr <= :apr_bound AND {_ELIGIBLE} AND {_COST} <= :cost_cap
ORDER BY total_cost, bank_id, product_id
LIMIT :limit OFFSET :offset
"""
"""Step 2: every eligible offer whose interest alone is not above ``C`` (see ``ranked_search``)
and whose total cost is not either, ranked by total cost and paged. The rate index holds every
column of the condition, so rows that fail it are never read from the table."""

ENVELOPE_SQL = """
SELECT 1 FROM region_envelope
WHERE min_amount <= :amount AND max_amount >= :amount AND min_term <= :term
  AND max_term >= :term AND min_income <= :income AND min_rank <= :rank
  AND min_age <= :age AND max_age >= :age
"""
"""Step 0: could any stored offer be eligible? (``region_envelope``, one row.)"""

SEARCH_SQL = ENVELOPE_SQL + ";" + CANDIDATES_SQL + ";" + RANKED_SQL
"""Both statements; the same for ptr's API and the bench's bare baseline (``ranked_search``)."""

_RANKS = "ABCDE"


CANDIDATES_MIN = 400
"""Step 1 reads at least this many cheapest-rate offers: among more of them the ``wanted``-th
lowest total cost is lower, so step 2's rate bound is tighter (one search at a time over
1,000,000 offers, this machine: p50/p99 28/337 ms with 21, 3.6/15 ms with 400)."""


def search_params(query: SearchQuery, candidates_min: int = 400) -> dict[str, Any]:
    """The statements' parameters; one row more than the page tells whether more follow."""
    offset = (query.page - 1) * query.page_size
    return {"amount": query.amount, "term": query.term_months, "income": query.income,
            "rank": band_rank(query.score_band), "age": query.age,
            "product_type": query.product_type, "lender": query.lender,
            "max_apr": query.max_apr, "limit": query.page_size + 1, "offset": offset,
            "wanted": offset + query.page_size + 1,
            "candidates": max(candidates_min, offset + query.page_size + 1)}



def apr_bound(amount: float, term: int, cost: float) -> float:
    """The highest rate whose interest alone does not exceed ``cost`` (bisection), a little above."""
    if interest(amount, term, 100.0) <= cost:
        return 100.0
    low, high = 0.0, 100.0
    for _ in range(50):
        mid = (low + high) / 2
        if interest(amount, term, mid) <= cost:
            low = mid
        else:
            high = mid
    return high + 1e-9


def ranked_search(execute: Callable[[str, dict[str, Any]], list[Any]],
                  params: dict[str, Any], cost_of: Callable[[Any], float]) -> list[Any]:
    """The page (plus one row) of eligible offers ranked by total cost, exactly.

    Step 0 answers a search outside the region's envelope with nothing. Step 1 reads
    ``candidates`` eligible offers of lowest rate; let ``C`` be the ``wanted``-th lowest total
    cost among them. At least ``wanted`` offers cost at most ``C``, so every offer of the first
    ``wanted`` by total cost costs at most ``C``; its interest alone is at most its cost, so its
    rate is at most ``apr_bound(C)``: step 2 ranks only those. When step 1 finds fewer than
    ``candidates``, it found every eligible offer."""
    if not execute(ENVELOPE_SQL, params):
        return []
    first = execute(CANDIDATES_SQL, params)
    if len(first) < params["candidates"]:
        ordered = sorted(first, key=lambda r: (cost_of(r), r[0], r[1]))
        return ordered[params["offset"]:params["offset"] + params["limit"]]
    cap = sorted(cost_of(r) for r in first)[params["wanted"] - 1] * (1 + 1e-9) + 1e-6
    bound = apr_bound(params["amount"], params["term"], cap)
    return execute(RANKED_SQL, {**params, "apr_bound": bound, "cost_cap": cap})


def keyed_rows_sql(count: int) -> str:
    """The offers of ``count`` keys (``:b0``, ``:p0``, ...) as the ranking's rows, each with its
    total cost for ``:amount`` and ``:term`` (the index ranks; this reads what it named)."""
    where = " OR ".join(f"(bank_id = :b{n} AND product_id = :p{n})" for n in range(count))
    return f"SELECT {_COLUMNS} FROM offers WHERE {where or '1 = 0'}"


def keyed_params(keys: list[tuple[str, str]], params: dict[str, Any]) -> dict[str, Any]:
    values = {"amount": params["amount"], "term": params["term"]}
    for n, (bank, product) in enumerate(keys):
        values[f"b{n}"], values[f"p{n}"] = bank, product
    return values


def total_cost(amount: float, term: int, apr: float, upfront_fee: float, monthly_fee: float,
               origination_pct: float) -> float:
    r = apr / 1200.0
    repaid = amount * r / (1 - (1 + r) ** -term) * term if apr > 0 else amount
    return repaid - amount + upfront_fee + monthly_fee * term + origination_pct * amount / 100.0


def explain_cost(amount: float, term: int, row: Any) -> dict[str, Any]:
    r = row.apr / 1200.0
    payment = amount * r / (1 - (1 + r) ** -term) if row.apr > 0 else amount / term
    interest = payment * term - amount
    monthly_fees = row.monthly_fee * term
    origination = row.origination_pct * amount / 100.0
    cost = interest + row.upfront_fee + monthly_fees + origination
    text = (f"{term} payments of {payment:.2f} at {row.apr:.3f} % a year repay {payment * term:.2f}"
            f" for {amount:.2f} borrowed: interest {interest:.2f}")
    for name, value in (("upfront fee", row.upfront_fee), ("monthly fees", monthly_fees),
                        ("origination fee", origination)):
        if value:
            text += f" + {name} {value:.2f}"
    text += f" = total cost {cost:.2f}"
    return {"monthly_payment": round(payment, 2), "interest": round(interest, 2),
            "upfront_fee": row.upfront_fee, "monthly_fees": round(monthly_fees, 2),
            "origination_fee": round(origination, 2), "total_cost": round(cost, 2),
            "total_repaid": round(cost + amount, 2), "text": text}


# --- caches --------------------------------------------------------------------------------------

class SearchCache(Protocol):
    hits: int
    misses: int

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def close(self) -> None: ...


class LocalCache:
    """An LRU of answers in this process (thread-safe: the searches run on a thread pool)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self.lock:
            value = self.entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: bytes) -> None:
        with self.lock:
            self.entries[key] = value
            if len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def drop_older(self, region: str, version: int) -> None:
        """Forget a region's answers of versions before ``version`` (they can never be read)."""
        prefix = f"{region}:"
        with self.lock:
            for key in [k for k in self.entries if k.startswith(prefix)
                        and int(k.split(":", 2)[1]) < version]:
                del self.entries[key]

    def close(self) -> None:
        self.entries.clear()


class RedisCache:
    """Answers in Redis (``redis://host:port/db``), shared by every API process; keys carry the
    region's version and expire after ``ttl_s``."""

    def __init__(self, url: str, ttl_s: int = 600, prefix: str = "ptr-credit") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0)
        self.client.ping()
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.hits = self.misses = 0

    def get(self, key: str) -> bytes | None:
        value = self.client.get(f"{self.prefix}:{key}")
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(value)  # type: ignore[arg-type]

    def put(self, key: str, value: bytes) -> None:
        self.client.set(f"{self.prefix}:{key}", value, ex=self.ttl_s)

    def drop_older(self, region: str, version: int) -> None:
        """Versioned keys are never read again once the version moves; they expire by TTL."""

    def close(self) -> None:
        self.client.close()


def make_cache(url: str, prefix: str = "ptr-credit") -> LocalCache | RedisCache:
    return RedisCache(url, prefix=prefix) if url else LocalCache()


# --- the service ---------------------------------------------------------------------------------

class SearchService:
    """Searches over the regions' stores with a cache; every method is safe on a thread pool."""

    def __init__(self, stores: dict[str, RegionStore], cache: LocalCache | RedisCache,
                 clock: Callable[[], float] = time.time,
                 candidates_min: int = CANDIDATES_MIN, index: bool = True) -> None:
        self.stores = stores
        self.cache = cache
        self.clock = clock
        self.statements = {sql: sa.text(sql) for sql in (ENVELOPE_SQL, CANDIDATES_SQL,
                                                          RANKED_SQL)}
        self.versions: dict[str, int] = {}
        self.candidates_min = candidates_min
        self.bounded = 0  # searches that needed step 2 (the rate bound)
        self.by_index = 0  # searches the index ranked
        self.by_sql = 0  # searches the SQL ranked (an index loading or behind, or none)
        self.indexes = {region: OfferIndex(store) for region, store in stores.items()} \
            if index else {}
        for offer_index in self.indexes.values():
            offer_index.start_loading()
        self._by_keys: dict[int, Any] = {}

    def ranked_rows(self, query: SearchQuery, version: int | None = None,
                    conn: sa.Connection | None = None) -> list[Any]:
        """The page (plus one row): by the region's index when it has caught up with
        ``version``, else (still loading, or the database moved under it) by the SQL."""
        store = self.stores[query.region]
        if conn is None:
            with store.engine.connect() as own:
                return self.ranked_rows(query, version, own)
        params = search_params(query, self.candidates_min)
        offer_index = self.indexes.get(query.region)
        if offer_index is not None and offer_index.ready_for(
                store.version(conn) if version is None else version):
            keys = offer_index.ranked_keys(params)
            if keys is not None:
                rows = self._rows_by_key(conn, keys, params) if keys else []
                if rows is not None:
                    self.by_index += 1
                    return rows
        self.by_sql += 1

        def execute(sql: str, params: dict[str, Any]) -> list[Any]:
            if sql is RANKED_SQL:
                self.bounded += 1
            return list(conn.execute(self.statements[sql], params))
        return ranked_search(execute, params, lambda row: row.total_cost)

    def index_lines(self) -> list[str]:
        """For ``ptr inspect``: each region's index and how the searches were ranked."""
        lines = [f"searches ranked by the index {self.by_index}, by the SQL {self.by_sql}"]
        for region, offer_index in sorted(self.indexes.items()):
            snapshot = offer_index.snapshot
            state = ("loading" if offer_index.loading else "not loaded") if snapshot is None \
                else (f"{snapshot.size:,} offers at version {snapshot.version}"
                      + (" (reloading)" if offer_index.loading else ""))
            lines.append(f"index {region}: {state}; loads {offer_index.loads}, refreshes "
                         f"{offer_index.refreshes}, merges {offer_index.merges}"
                         + (f"; last load failed: {offer_index.load_error}"
                            if offer_index.load_error else ""))
        return lines

    def load_indexes(self) -> None:
        """Have every region's index read and caught up now (the service otherwise loads them in
        the background and answers by the SQL meanwhile)."""
        for region, offer_index in self.indexes.items():
            offer_index.join()
            if not offer_index.ready_for(self.stores[region].version()):
                offer_index.join()  # the load ``ready_for`` started
                if not offer_index.ready_for(self.stores[region].version()):
                    offer_index.load()  # here, so that what stops it is raised

    def _rows_by_key(self, conn: sa.Connection, keys: list[tuple[str, str]],
                     params: dict[str, Any]) -> list[Any] | None:
        """The offers ``keys`` names, as the SQL's rows (its cost included), in that order."""
        statement = self._by_keys.get(len(keys))
        if statement is None:
            statement = self._by_keys[len(keys)] = sa.text(keyed_rows_sql(len(keys)))
        return rows_in_order(keys, conn.execute(statement, keyed_params(keys, params)))

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """The answer to ``query`` (a ``SearchPage`` as a dict), its reads on one connection."""
        store = self.stores[query.region]
        with store.engine.connect() as conn:
            version = store.version(conn)
            if self.versions.get(query.region) != version:
                self.versions[query.region] = version
                self.cache.drop_older(query.region, version)
            key = f"{query.region}:{version}:{query.model_dump_json()}"
            cached = self.cache.get(key)
            if cached is not None:
                ranked_by, rows = json.loads(cached)
            else:
                indexed = self.by_index
                rows = [dict(r._mapping) for r in self.ranked_rows(query, version, conn)]
                ranked_by = "index" if self.by_index > indexed else "sql"
                self.cache.put(key, json.dumps([ranked_by, rows]).encode())
            page = rows[:query.page_size]
            banks = store.bank_rows((r["bank_id"] for r in page), conn)
        now = self.clock()
        results = []
        for n, row in enumerate(page):
            bank = banks.get(row["bank_id"])
            observed = bank.observed_at if bank is not None else row["observed_at"]
            explained = explain_cost(query.amount, query.term_months, _Row(row))
            results.append({
                "rank": (query.page - 1) * query.page_size + n + 1,
                "offer": {"bank_id": row["bank_id"], "product_id": row["product_id"],
                          "lender": row["lender"], "product": row["product"],
                          "product_type": row["product_type"], "region": query.region,
                          "country": row["country"], "min_amount": row["min_amount"],
                          "max_amount": row["max_amount"], "min_term": row["min_term"],
                          "max_term": row["max_term"], "apr": row["apr"],
                          "upfront_fee": row["upfront_fee"], "monthly_fee": row["monthly_fee"],
                          "origination_pct": row["origination_pct"],
                          "min_income": row["min_income"], "min_age": row["min_age"],
                          "max_age": row["max_age"],
                          "min_score_band": _RANKS[5 - int(row["min_rank"])]},
                "total_cost": explained["total_cost"], "cost": explained,
                "observed_at": observed, "age_s": round(max(0.0, now - observed), 3),
                "fetch_id": bank.fetch_id if bank is not None else row["fetch_id"],
                "bank_status": bank.status if bank is not None else "unknown"})
        return {"region": query.region, "page": query.page, "page_size": query.page_size,
                "has_more": len(rows) > query.page_size, "cached": cached is not None,
                "ranked_by": ranked_by, "results": results}

    def close(self) -> None:
        self.cache.close()
        for offer_index in self.indexes.values():
            offer_index.close()
        for store in self.stores.values():
            store.dispose()


class _Row:
    """Attribute access to a result row's dict (``explain_cost`` reads attributes)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


