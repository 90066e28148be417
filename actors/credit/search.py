"""The search: eligible offers ranked by total cost of credit, one SQL statement, and a cache.

Total cost of credit for an amount ``P`` over ``n`` months at a yearly rate ``apr`` (annuity,
monthly rate ``r = apr / 1200``): ``payment = P r / (1 - (1 + r)^-n)`` (``P / n`` at 0 %),
``interest = payment n - P``, and ``total_cost = interest + upfront_fee + monthly_fee n +
origination_pct P / 100``. ``SEARCH_SQL`` computes it in the database (SQLite and PostgreSQL both
have ``pow``) for the eligible offers only and lets the database sort and page; ``explain_cost``
recomputes it in Python for the page's offers, with the text each result carries.

``SearchService`` answers a ``SearchQuery`` for its regions: reads the region's version, looks the
page up in the cache (``LocalCache`` in the process, or ``RedisCache``), and on a miss runs
``SEARCH_SQL``. The page's banks' status and ``observed_at`` are read at answer time, not cached:
a bank in outage is served from what was last fetched, with its age.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from actors.credit.store import RegionStore
from protocols.credit import SearchQuery, band_rank

__all__ = ["LocalCache", "RateLimiter", "RedisCache", "SEARCH_SQL", "SearchCache",
           "SearchService", "explain_cost", "make_cache", "search_params", "total_cost"]

SEARCH_SQL = """
SELECT bank_id, product_id, lender, product, product_type, country, min_amount, max_amount,
       min_term, max_term, apr, upfront_fee, monthly_fee, origination_pct, min_income, min_age,
       max_age, min_rank, observed_at, fetch_id,
       (CASE WHEN apr > 0
             THEN :amount * (apr / 1200.0) / (1 - pow(1 + apr / 1200.0, -:term)) * :term
             ELSE :amount END) - :amount
       + upfront_fee + monthly_fee * :term + origination_pct * :amount / 100.0 AS total_cost
FROM offers
WHERE min_amount <= :amount AND max_amount >= :amount
  AND min_term <= :term AND max_term >= :term
  AND min_income <= :income AND min_rank <= :rank
  AND min_age <= :age AND max_age >= :age
  AND (CAST(:product_type AS VARCHAR(16)) IS NULL OR product_type = :product_type)
  AND (CAST(:lender AS VARCHAR(200)) IS NULL OR lender = :lender)
  AND (CAST(:max_apr AS FLOAT) IS NULL OR apr <= :max_apr)
ORDER BY total_cost, bank_id, product_id
LIMIT :limit OFFSET :offset
"""
"""One statement, the same for ptr's API and the bench's bare baseline."""

_RANKS = "ABCDE"


def search_params(query: SearchQuery) -> dict[str, Any]:
    """``SEARCH_SQL``'s parameters; one row more than the page tells whether more follow."""
    return {"amount": query.amount, "term": query.term_months, "income": query.income,
            "rank": band_rank(query.score_band), "age": query.age,
            "product_type": query.product_type, "lender": query.lender,
            "max_apr": query.max_apr, "limit": query.page_size + 1,
            "offset": (query.page - 1) * query.page_size}


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
                 clock: Callable[[], float] = time.time) -> None:
        self.stores = stores
        self.cache = cache
        self.clock = clock
        self.sql = sa.text(SEARCH_SQL)
        self.versions: dict[str, int] = {}

    def ranked_rows(self, query: SearchQuery) -> list[Any]:
        store = self.stores[query.region]
        with store.engine.connect() as conn:
            return list(conn.execute(self.sql, search_params(query)))

    def search(self, query: SearchQuery) -> dict[str, Any]:
        store = self.stores[query.region]
        version = store.version()
        if self.versions.get(query.region) != version:
            self.versions[query.region] = version
            self.cache.drop_older(query.region, version)
        key = f"{query.region}:{version}:{query.model_dump_json()}"
        cached = self.cache.get(key)
        if cached is not None:
            rows = json.loads(cached)
        else:
            rows = [dict(r._mapping) for r in self.ranked_rows(query)]
            self.cache.put(key, json.dumps(rows).encode())
        page = rows[:query.page_size]
        banks = store.bank_rows(r["bank_id"] for r in page)
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
                "results": results}

    def close(self) -> None:
        self.cache.close()
        for store in self.stores.values():
            store.dispose()


class _Row:
    """Attribute access to a result row's dict (``explain_cost`` reads attributes)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


class RateLimiter:
    """A token bucket per client: ``rate_per_s`` sustained, ``burst`` at once. ``take`` returns 0
    when admitted, otherwise the seconds until a token is back."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 100_000) -> None:
        self.rate, self.burst, self.clock = rate_per_s, float(burst), clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.max_clients = max_clients
        self.refused = 0

    def take(self, client: str) -> float:
        now = self.clock()
        tokens, at = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self.buckets[client] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self.buckets[client] = (tokens, now)
            self.refused += 1
            wait = (1.0 - tokens) / self.rate
        if len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait
