"""The search's index: a region's offers held as columns in the search API's memory, in rate order.

The database stays the truth and the SQL ranking (``actors.credit.search.ranked_search``) stays the
reference; the index answers the same question faster. ``ranked_search`` steps through SQLite's
rate index row by row (a mean of ~4.4 ms a search over 1,000,000 offers, one at a time, on the
project's 2-core machine); the index does the same walk in numpy, a block of rows per step:

1. every offer is a row of plain columns (rate, amount and term ranges, income, score band, ages,
   fees, product type, lender), sorted by rate;
2. a search tests eligibility on a block of rows at once (4,096 first, doubling up to 65,536) and
   computes the total cost of the eligible ones, keeping the ``wanted`` cheapest seen so far;
3. interest alone is a lower bound of an offer's cost that grows with the rate (fees are never
   negative), so once the interest at a block's first rate is above the ``wanted``-th cost kept,
   no later row can make the page: the walk stops (the same bound as the SQL's step 2);
4. the page is the kept offers ordered by (total cost, bank, product), as the SQL orders it; its
   rows are then read from the database by key, so what a result shows is what is stored now.

Keeping up with the fetchers: every version of the region records which banks it replaced
(``RegionStore.changes_since``). ``refresh`` reads those banks' offers again: their old rows are
marked dead in the large segment, and they go to a small second segment (sorted too) that every
search also walks. When the small segment or the dead rows pass ``merge_fraction`` of the large
one, both are merged into one sorted segment again. A reader that missed versions whose change
rows are gone reads the whole region again (``load``). Each change builds a new ``Snapshot`` and
swaps it in: a search works on the snapshot it started with and takes no lock.

Memory: ~90 bytes an offer (1,000,000 offers: ~90 MB), plus one string per distinct bank and
product id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.credit.store import RegionStore
from protocols.credit import PRODUCT_TYPES

__all__ = ["INDEX_COLUMNS", "REFRESH_BANKS_MAX", "OfferIndex", "Segment", "Snapshot", "interest",
           "rows_in_order"]

INDEX_COLUMNS = ("bank_id", "product_id", "lender", "product_type", "apr", "min_amount",
                 "max_amount", "min_term", "max_term", "min_income", "min_rank", "min_age",
                 "max_age", "upfront_fee", "monthly_fee", "origination_pct")
"""What the index reads of each offer (the columns eligibility, cost and order need)."""

_NUMBERS = {"apr": np.float64, "min_amount": np.float64, "max_amount": np.float64,
            "min_term": np.int32, "max_term": np.int32, "min_income": np.float64,
            "min_rank": np.int8, "min_age": np.int16, "max_age": np.int16,
            "upfront_fee": np.float64, "monthly_fee": np.float64,
            "origination_pct": np.float64}
_CODES = ("bank", "product", "lender", "ptype")
_TYPE_CODE = {name: code for code, name in enumerate(PRODUCT_TYPES)}
_FIRST_BLOCK = 4_096
_LAST_BLOCK = 65_536
_LOAD_BATCH = 50_000
_BANKS_A_READ = 500      # bank ids in one IN (...) list (SQLite allows 32,766 parameters)
REFRESH_BANKS_MAX = 2_000
"""A catch-up that would read more banks than this reads the whole region instead."""


def interest(amount: float, term: int, apr: float) -> float:
    """Interest alone over the term (increasing in ``apr``): a lower bound of the total cost."""
    if apr <= 0:
        return 0.0
    r = apr / 1200.0
    return amount * r / (1 - (1 + r) ** -term) * term - amount


class _Names:
    """Strings as small integers (bank ids, product ids, lenders): one list, one dict."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code


@dataclass(frozen=True)
class Segment:
    """Offers as columns sorted by rate; ``alive`` is False for rows replaced since."""

    columns: dict[str, np.ndarray]
    alive: np.ndarray

    def __len__(self) -> int:
        return len(self.alive)

    @classmethod
    def empty(cls) -> Segment:
        columns = {name: np.zeros(0, dtype) for name, dtype in _NUMBERS.items()}
        columns.update({name: np.zeros(0, np.int32) for name in _CODES})
        return cls(columns, np.zeros(0, bool))

    @classmethod
    def concat(cls, parts: Sequence[Segment]) -> Segment:
        """The live rows of ``parts``, sorted by rate (a stable sort: equal rates keep order)."""
        keep = [np.flatnonzero(p.alive) for p in parts]
        columns = {name: np.concatenate([p.columns[name][k] for p, k in zip(parts, keep)])
                   for name in parts[0].columns}
        order = np.argsort(columns["apr"], kind="stable")
        return cls({name: column[order] for name, column in columns.items()},
                   np.ones(len(order), bool))

    def dead(self) -> int:
        return int(len(self.alive) - np.count_nonzero(self.alive))


@dataclass(frozen=True)
class Snapshot:
    """The index at one version: the large segment, the small one, and where each bank's rows
    are in the large one."""

    version: int
    main: Segment
    recent: Segment
    main_rows: dict[int, np.ndarray] = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.main) - self.main.dead() + len(self.recent)


class _Kept:
    """The cheapest (cost, segment, row) found so far: at least ``wanted`` once that many are
    eligible, every one costing at most ``threshold`` (ties at the threshold are all kept)."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.costs = np.zeros(0)
        self.where = np.zeros((0, 2), np.int64)
        self.threshold = float("inf")

    def add(self, costs: np.ndarray, segment: int, rows: np.ndarray) -> None:
        where = np.column_stack((np.full(len(rows), segment, np.int64), rows))
        self.costs = np.concatenate((self.costs, costs))
        self.where = np.concatenate((self.where, where))
        if len(self.costs) >= self.wanted:
            kth = float(np.partition(self.costs, self.wanted - 1)[self.wanted - 1])
            keep = self.costs <= kth
            self.costs, self.where, self.threshold = self.costs[keep], self.where[keep], kth


class OfferIndex:
    """One region's offers in memory (see the module's docstring); safe on a thread pool: searches
    read a snapshot, ``load``/``refresh`` build the next one under a lock."""

    def __init__(self, store: RegionStore, *, merge_fraction: float = 0.05) -> None:
        self.store = store
        self.merge_fraction = merge_fraction
        self.snapshot: Snapshot | None = None
        self.banks = _Names()
        self.products = _Names()
        self.lenders = _Names()
        self.lock = threading.Lock()
        self.loading = False
        self._loader: threading.Thread | None = None
        self.closed = False
        self.load_error = ""
        self.loads = 0
        self.refreshes = 0
        self.merges = 0

    # --- keeping up -------------------------------------------------------------------------------

    def ready_for(self, version: int) -> bool:
        """Can a search of the database at ``version`` use the index? Catches up (``refresh``) if
        it can; otherwise starts reading the region again in the background and says no (the
        caller asks the SQL meanwhile)."""
        snapshot = self.snapshot
        if snapshot is not None and snapshot.version >= version:
            return True
        if self.loading or self.closed:
            return False
        if snapshot is not None and self.refresh():
            return True
        self.start_loading()
        return False

    def start_loading(self) -> None:
        """``load`` on a daemon thread (a region of 1,000,000 offers took 5 s on the project's
        2-core machine)."""
        with self.lock:
            if self.loading or self.closed:
                return
            self.loading = True
            self._loader = threading.Thread(target=self._load_quietly, daemon=True,
                                            name=f"index-{self.store.region}")
        self._loader.start()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for a background load (``start_loading``) to end."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout_s)

    def _load_quietly(self) -> None:
        try:
            self.load()
        except Exception as exc:  # noqa: BLE001 - the SQL answers meanwhile; the error is shown
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.loading = False

    def load(self) -> None:
        """Read the whole region (the version is read first: changes after it are replayed by the
        next ``refresh``, and replaying a bank twice reads it twice, nothing more)."""
        with self.lock:  # refresh waits (it would otherwise number the same names twice)
            version = self.store.version()
            parts = [self._segment(rows) for rows in self._read(None)]
            main = Segment.concat(parts) if parts else Segment.empty()
            self.snapshot = Snapshot(version, main, Segment.empty(), self._bank_rows(main))
            self.loads += 1
            self.load_error = ""

    def close(self) -> None:
        self.closed = True

    def refresh(self) -> bool:
        """Catch up with the database; False when the index must be loaded again (``load``)."""
        with self.lock:
            snapshot = self.snapshot
            if snapshot is None:
                return False
            found = self.store.changes_since(snapshot.version)
            if found is None:
                return False
            version, rows = found
            if version == snapshot.version:
                return True
            banks = sorted({b for _, b in rows if b})
            if len(banks) > REFRESH_BANKS_MAX:
                return False
            self.snapshot = self._replace(snapshot, version, banks) if banks else Snapshot(
                version, snapshot.main, snapshot.recent, snapshot.main_rows)
            self.refreshes += 1
            return True

    def _replace(self, snapshot: Snapshot, version: int, banks: list[str]) -> Snapshot:
        codes = [self.banks.code(b) for b in banks]
        alive = snapshot.main.alive.copy()
        for code in codes:
            rows = snapshot.main_rows.get(code)
            if rows is not None:
                alive[rows] = False
        recent = snapshot.recent
        recent_alive = recent.alive & ~np.isin(recent.columns["bank"], codes)
        fresh = [self._segment(rows) for rows in self._read(banks)]
        recent = Segment.concat([Segment(recent.columns, recent_alive), *fresh])
        main = Segment(snapshot.main.columns, alive)
        limit = self.merge_fraction * max(1, len(main))
        if len(recent) > limit or main.dead() > limit:
            merged = Segment.concat([main, recent])
            self.merges += 1
            return Snapshot(version, merged, Segment.empty(), self._bank_rows(merged))
        return Snapshot(version, main, recent, snapshot.main_rows)

    def _read(self, banks: list[str] | None) -> Iterator[list[tuple[Any, ...]]]:
        """The offers' index columns in batches (every offer, or those of ``banks``)."""
        sql = f"SELECT {', '.join(INDEX_COLUMNS)} FROM offers"
        connection = self.store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if banks is None:
                cursor.execute(sql)
                while rows := cursor.fetchmany(_LOAD_BATCH):
                    yield rows
            else:
                mark = "%s" if self._pyformat() else "?"
                for start in range(0, len(banks), _BANKS_A_READ):
                    some = banks[start:start + _BANKS_A_READ]
                    cursor.execute(f"{sql} WHERE bank_id IN ({', '.join([mark] * len(some))})",
                                   some)
                    if rows := cursor.fetchall():
                        yield rows
            cursor.close()
        finally:
            connection.close()

    def _pyformat(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    def _segment(self, rows: list[tuple[Any, ...]]) -> Segment:
        count = len(rows)
        columns: dict[str, np.ndarray] = {}
        for position, name in enumerate(INDEX_COLUMNS[4:], start=4):
            columns[name] = np.fromiter((r[position] for r in rows), _NUMBERS[name], count)
        columns["bank"] = np.fromiter((self.banks.code(r[0]) for r in rows), np.int32, count)
        columns["product"] = np.fromiter((self.products.code(r[1]) for r in rows), np.int32,
                                         count)
        columns["lender"] = np.fromiter((self.lenders.code(r[2]) for r in rows), np.int32, count)
        columns["ptype"] = np.fromiter((_TYPE_CODE.get(r[3], -1) for r in rows), np.int32, count)
        order = np.argsort(columns["apr"], kind="stable")
        return Segment({n: c[order] for n, c in columns.items()}, np.ones(count, bool))

    @staticmethod
    def _bank_rows(segment: Segment) -> dict[int, np.ndarray]:
        banks = segment.columns["bank"]
        order = np.argsort(banks, kind="stable")
        starts = np.flatnonzero(np.diff(banks[order], prepend=-1))
        return {int(banks[order[s]]): rows
                for s, rows in zip(starts, np.split(order, starts[1:]))}

    # --- searching --------------------------------------------------------------------------------

    def ranked_keys(self, params: dict[str, Any]) -> list[tuple[str, str]] | None:
        """(bank id, product id) of the page (plus one) for ``search_params``' ``params``, ranked
        as ``ranked_search`` ranks; None before the first ``load``."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        kept = _Kept(params["wanted"])
        lender = params["lender"]
        if lender is not None and lender not in self.lenders.codes:
            return []
        for number, segment in enumerate((snapshot.main, snapshot.recent)):
            self._walk(segment, number, params, kept)
        banks, products = self.banks.names, self.products.names
        segments = (snapshot.main, snapshot.recent)
        ranked = sorted(
            (float(cost), banks[segments[s].columns["bank"][r]],
             products[segments[s].columns["product"][r]])
            for cost, (s, r) in zip(kept.costs, kept.where))
        page = ranked[params["offset"]:params["offset"] + params["limit"]]
        return [(bank, product) for _, bank, product in page]

    def _walk(self, segment: Segment, number: int, params: dict[str, Any], kept: _Kept) -> None:
        c = segment.columns
        amount, term = float(params["amount"]), int(params["term"])
        apr = c["apr"]
        end = len(apr)
        if params["max_apr"] is not None:
            end = int(np.searchsorted(apr, params["max_apr"], side="right"))
        ptype = None if params["product_type"] is None else _TYPE_CODE[params["product_type"]]
        lender = None if params["lender"] is None else self.lenders.codes[params["lender"]]
        start, block = 0, _FIRST_BLOCK
        while start < end:
            if interest(amount, term, float(apr[start])) > kept.threshold:
                return
            stop = min(end, start + block)
            s = slice(start, stop)
            ok = segment.alive[s] & (c["min_amount"][s] <= amount)
            ok &= c["max_amount"][s] >= amount
            ok &= c["min_term"][s] <= term
            ok &= c["max_term"][s] >= term
            ok &= c["min_income"][s] <= params["income"]
            ok &= c["min_rank"][s] <= params["rank"]
            ok &= c["min_age"][s] <= params["age"]
            ok &= c["max_age"][s] >= params["age"]
            if ptype is not None:
                ok &= c["ptype"][s] == ptype
            if lender is not None:
                ok &= c["lender"][s] == lender
            rows = np.flatnonzero(ok) + start
            if len(rows):
                kept.add(_costs(c, rows, amount, term), number, rows)
            start, block = stop, min(_LAST_BLOCK, block * 2)


def _costs(columns: dict[str, np.ndarray], rows: np.ndarray, amount: float,
           term: int) -> np.ndarray:
    """Total cost of credit of ``rows``, the formula of ``search._COST`` in the same order."""
    apr = columns["apr"][rows]
    rate = apr / 1200.0
    with np.errstate(divide="ignore", invalid="ignore"):
        repaid = np.where(apr > 0, amount * rate / (1 - np.power(1 + rate, -term)) * term,
                          amount)
    return (repaid - amount + columns["upfront_fee"][rows] + columns["monthly_fee"][rows] * term
            + columns["origination_pct"][rows] * amount / 100.0)


def rows_in_order(keys: Iterable[tuple[str, str]], rows: Iterable[Any]) -> list[Any] | None:
    """``rows`` (each with ``bank_id`` and ``product_id``) in the order of ``keys``; None if one is
    missing (the database moved past the index: the caller asks the SQL instead)."""
    by_key = {(r.bank_id, r.product_id): r for r in rows}
    ordered = [by_key.get(key) for key in keys]
    return None if any(r is None for r in ordered) else ordered
