"""``ptr bench credit``: what the credit aggregator's search and fetchers achieve, in one run.

1. **Offers**: ``offers`` rows (1,000,000 by default) are generated into the EU region's SQLite
   database (``executemany`` in chunks of 10,000, the search index built after the load), from
   ``offers // 25`` banks of 25 products each; a search reads one region, so all of them are in
   the searched region.
2. **ptr**: the search API (``CreditSearchApi`` on multiprocTCPBase, its in-process cache on,
   ``threads`` search threads) under ``concurrency`` clients (4) looping over ``seconds`` (a
   closed loop on a 2-core machine: the latency of each search grows with the clients, about
   ``concurrency / searches_per_s``), each search a fresh random user (amount, term, income,
   age, score band), so the cache rarely helps: ``search_p50_ms``, ``search_p99_ms``,
   ``searches_per_s``. The API ranks by its in-memory index (``actors.credit.index``), which it
   loads in the background when it starts; the load starts once a search says ``ranked_by:
   index`` (``index_ready_s`` after the API answered).
3. **bare**: the issue's baseline, the same SQL statements (``ranked_search``) on the same file
   behind a plain aiohttp server in its own process (sqlite3 on a pool of ``threads`` threads,
   as many as ptr's ``search_threads``; no validation of anything but numbers), under the same
   load: ``bare_search_p50_ms``, ``bare_search_p99_ms``, ``bare_searches_per_s``; ratios are
   ptr / bare. Then the same plain server ranking with ptr's ``OfferIndex`` and reading the
   page's rows with sqlite3: ``bare_index_search_*`` and ``index_p99_ratio`` (what the edge and
   the service cost beside the same ranking).
4. **Quotas**: ``sim_banks`` fetchers over ``days`` simulated days at accelerated time against
   banks that are sometimes busy (429 with Retry-After) or out (hours to days):
   ``quota_violations`` (calls over a bank's quota: must be 0), and ``fresh_ratio``: every
   simulated hour one search per region, the share of returned offers observed within their
   bank's schedule interval.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from actors.clock import MockClock
from actors.credit.api import CreditSearchApi
from actors.credit.index import OfferIndex, rows_in_order
from actors.credit.search import (
    CANDIDATES_MIN,
    LocalCache,
    SearchService,
    keyed_params,
    keyed_rows_sql,
    ranked_search,
)
from actors.credit.simulation import run_accelerated
from actors.credit.store import RegionStore, offers_table, rebuild_envelope, region_url
from actors.credit.world import BankWorld, generate_banks
from protocols.credit import PRODUCT_TYPES, REGIONS, SCORE_BANDS
from protocols.edges import EdgeInfo, GetEdgeInfo
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.runtime import ActorRuntime

TARGETS = {"search_p99_ms": 50, "quota_violations": 0}
T0 = 1_780_000_000.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


# --- the offers -----------------------------------------------------------------------------------

def generate_offers(path: str, count: int, seed: int = 7) -> float:
    """``count`` offers into the region store at ``path`` (a SQLite URL); returns seconds taken."""
    began = time.perf_counter()
    store = RegionStore(path, "EU")
    store.dispose()
    rng = random.Random(seed)
    db = sqlite3.connect(path.removeprefix("sqlite:///"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("DROP INDEX IF EXISTS offers_by_rate_v2")
    banks = max(1, count // 25)
    db.executemany("INSERT INTO banks VALUES (?,?,?,?,?,?,?,?,?)",
                   [(f"bank-{b:07d}", f"Bank {b}", "FR", "Europe/Paris", 3600.0, "ok",
                     T0, f"f-{b}", "") for b in range(banks)])
    columns = ("bank_id, product_id, lender, product, product_type, country, min_amount, "
               "max_amount, min_term, max_term, apr, upfront_fee, monthly_fee, origination_pct, "
               "min_income, min_age, max_age, min_rank, observed_at, fetch_id")
    sql = f"INSERT INTO offers ({columns}) VALUES ({','.join('?' * 20)})"
    chunk: list[tuple[Any, ...]] = []
    for n in range(count):
        bank = n // 25
        low = rng.choice((500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000))
        term_low = rng.choice((3, 6, 12, 24, 36))
        chunk.append((f"bank-{bank:07d}", f"p{n % 25}", f"Bank {bank}", f"Loan {n}",
                      rng.choice(PRODUCT_TYPES), "FR", float(low),
                      float(low * rng.choice((2, 5, 10))),
                      term_low, term_low + rng.choice((12, 24, 48, 96)),
                      round(rng.uniform(1.5, 24.0), 3), float(rng.choice((0, 50, 150, 300))),
                      float(rng.choice((0, 0, 2, 5))), rng.choice((0.0, 1.0, 2.5)),
                      float(rng.choice((0, 800, 1500, 2500, 4000))), rng.choice((18, 21, 25)),
                      rng.choice((65, 70, 75)), rng.randint(1, 4), T0, f"f-{bank}"))
        if len(chunk) == 10_000:
            db.executemany(sql, chunk)
            chunk.clear()
    if chunk:
        db.executemany(sql, chunk)
    db.commit()
    db.close()
    store = RegionStore(path, "EU")
    for index in offers_table.indexes:  # the search index, built on the loaded table
        index.create(store.engine, checkfirst=True)
    with store.engine.begin() as conn:
        rebuild_envelope(conn)
    store.dispose()
    return time.perf_counter() - began


def random_params(rng: random.Random) -> dict[str, Any]:
    return {"amount": round(rng.uniform(1_000, 60_000), 2),
            "term_months": rng.choice((12, 24, 36, 48, 60, 84)),
            "income": round(rng.uniform(500, 6_000), 2), "age": rng.randint(18, 80),
            "score_band": rng.choice(SCORE_BANDS), "region": "EU", "page_size": 20}


async def _load(url: str, seconds: float, concurrency: int, seed: int) -> tuple[list[float], int]:
    import aiohttp
    latencies: list[float] = []
    errors = 0
    rng = random.Random(seed)
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                params = random_params(rng)
                started = time.perf_counter()
                async with s.get(url + "/offers", params=params) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors


def _figures(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    return {"p50_ms": _percentile(latencies, 0.50), "p99_ms": _percentile(latencies, 0.99),
            "per_s": round(len(latencies) / seconds, 1), "errors": errors,
            "mean_ms": round(statistics.fmean(latencies), 3) if latencies else 0.0}


# --- ptr ------------------------------------------------------------------------------------------

def measure_ptr(urls: dict[str, str], seconds: float, concurrency: int,
                threads: int) -> dict[str, Any]:
    tree = SupervisorSpec(Strategy.ONE_FOR_ONE, [ChildSpec("api", CreditSearchApi, {
        "port": 0, "regions": urls, "rate_per_s": 1e9, "burst": 10**9, "max_in_flight": 4096,
        "search_threads": threads},
        name="bench-credit-api")])
    with ActorRuntime(tree, base="multiproc", name="credit-bench") as rt:
        info = rt.ask("bench-credit-api", GetEdgeInfo(), 30)
        assert isinstance(info, EdgeInfo)
        began = time.perf_counter()
        index_ready_s = asyncio.run(_index_ready(info.url, 120.0)) - began
        asyncio.run(_load(info.url, min(1.0, seconds), concurrency, 99))  # warm up
        latencies, errors = asyncio.run(_load(info.url, seconds, concurrency, 1))
    return {**_figures(latencies, errors, seconds), "index_ready_s": round(index_ready_s, 2)}


async def _index_ready(url: str, timeout_s: float) -> float:
    """When a fresh search is first ranked by the API's index (it loads in the background)."""
    import aiohttp
    rng = random.Random(5)
    deadline = time.perf_counter() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < deadline:
            async with session.get(url + "/offers", params=random_params(rng)) as response:
                if (await response.json()).get("ranked_by") == "index":
                    return time.perf_counter()
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the search API's index did not load within {timeout_s} s")


# --- the bare baseline ----------------------------------------------------------------------------

def _bare_server(path: str, port_out: Any, stop: Any, ranker: str, threads: int) -> None:
    """``ranker`` "sql": ``ranked_search``'s statements; "index": the same ``OfferIndex`` as
    ptr's API, its page's rows then read by key with plain sqlite3."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from aiohttp import web
    local = threading.local()
    pool = ThreadPoolExecutor(threads)
    index = None
    if ranker == "index":
        index = OfferIndex(RegionStore(f"sqlite:///{path}", "EU"))
        index.load()

    def query(params: dict[str, Any]) -> bytes:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = sqlite3.connect(path, check_same_thread=False)
            db.row_factory = sqlite3.Row
        if index is None:
            rows = ranked_search(lambda sql, p: db.execute(sql, p).fetchall(), params,
                                 lambda row: row["total_cost"])
        else:
            keys = index.ranked_keys(params) or []
            found = db.execute(keyed_rows_sql(len(keys)), keyed_params(keys, params)).fetchall()
            rows = rows_in_order(keys, [_Keyed(r) for r in found]) or []
        return json.dumps([dict(r) for r in rows]).encode()

    async def offers(request: web.Request) -> web.Response:
        q = request.query
        ranks = {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1}
        page_size = int(q.get("page_size", 20))
        params = {"amount": float(q["amount"]), "term": int(q["term_months"]),
                  "income": float(q["income"]), "rank": ranks[q["score_band"]],
                  "age": int(q["age"]), "product_type": None, "lender": None, "max_apr": None,
                  "limit": page_size + 1, "offset": 0, "wanted": page_size + 1,
                  "candidates": max(CANDIDATES_MIN, page_size + 1)}
        body = await asyncio.get_running_loop().run_in_executor(pool, query, params)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/offers", offers)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()

    asyncio.run(main())


class _Keyed(dict):  # type: ignore[type-arg]
    """A sqlite3 row as a dict whose keys are also attributes (``rows_in_order`` reads them)."""

    def __init__(self, row: sqlite3.Row) -> None:
        super().__init__(zip(row.keys(), row))
        self.bank_id, self.product_id = self["bank_id"], self["product_id"]


def measure_bare(path: str, seconds: float, concurrency: int, ranker: str,
                 threads: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    port_out, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_bare_server, args=(path, port_out, stop, ranker, threads),
                         daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{port_out.get(timeout=120)}"
        asyncio.run(_load(url, min(1.0, seconds), concurrency, 99))
        latencies, errors = asyncio.run(_load(url, seconds, concurrency, 1))
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()
    return _figures(latencies, errors, seconds)


# --- quotas over a simulated month ----------------------------------------------------------------

def measure_quotas(data_dir: str, banks: int, days: float) -> dict[str, Any]:
    world_banks = generate_banks(banks)
    clock = MockClock(T0)
    world = BankWorld(world_banks, clock, busy_rate=0.02, busy_retry_after_s=120)
    rng = random.Random(3)
    for bank in world_banks[::7]:
        start = T0 + rng.uniform(0, days * 86400)
        world.add_outage(bank.bank_id, start, start + rng.choice((1, 3, 12, 48)) * 3600)
    stores = {r: RegionStore(region_url("", data_dir, r), r) for r in REGIONS}
    for region, store in stores.items():
        store.register_banks([b for b in world_banks if b.region == region])
    service = SearchService(stores, LocalCache(), clock)
    began = time.perf_counter()
    run = asyncio.run(run_accelerated(world, clock, days, search=service))
    took = time.perf_counter() - began
    service.close()
    return {"quota_violations": run.violations, "quota_calls": run.calls,
            "simulated_days": days, "simulated_banks": banks, "simulated_fetches": run.fetches,
            "simulated_fetch_failures": run.failed, "simulated_rate_limited": run.rate_limited,
            "breaker_opens": run.breaker_opens, "fresh_ratio": run.fresh_ratio,
            "simulation_s": round(took, 2)}


def run(offers: int = 1_000_000, seconds: float = 10.0, concurrency: int = 4,
        sim_banks: int = 120, days: float = 30.0, bare: bool = True,
        threads: int = 1) -> dict[str, Any]:
    offers, concurrency, sim_banks, threads = int(offers), int(concurrency), int(sim_banks), \
        int(threads)
    seconds, days = float(seconds), float(days)
    result: dict[str, Any] = {"base": "multiprocTCPBase", "offers": offers, "seconds": seconds,
                              "concurrency": concurrency, "search_threads": threads,
                              "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="ptr-bench-credit-") as tmp:
        urls = {r: region_url("", tmp, r) for r in REGIONS}
        for region in ("US", "other"):
            RegionStore(urls[region], region).dispose()
        result["generate_s"] = round(generate_offers(urls["EU"], offers), 2)
        ptr = measure_ptr(urls, seconds, concurrency, threads)
        result.update({"search_p50_ms": ptr["p50_ms"], "search_p99_ms": ptr["p99_ms"],
                       "index_ready_s": ptr["index_ready_s"],
                       "searches_per_s": ptr["per_s"], "search_errors": ptr["errors"]})
        if bare:
            base = measure_bare(urls["EU"].removeprefix("sqlite:///"), seconds, concurrency,
                                "sql", threads)
            result.update({"bare_search_p50_ms": base["p50_ms"],
                           "bare_search_p99_ms": base["p99_ms"],
                           "bare_searches_per_s": base["per_s"], "bare_errors": base["errors"],
                           "searches_per_s_ratio": round(ptr["per_s"] / base["per_s"], 3)
                           if base["per_s"] else 0.0,
                           "search_p99_ratio": round(ptr["p99_ms"] / base["p99_ms"], 3)
                           if base["p99_ms"] else 0.0})
            same = measure_bare(urls["EU"].removeprefix("sqlite:///"), seconds, concurrency,
                                "index", threads)
            result.update({"bare_index_search_p50_ms": same["p50_ms"],
                           "bare_index_search_p99_ms": same["p99_ms"],
                           "bare_index_searches_per_s": same["per_s"],
                           "bare_index_errors": same["errors"],
                           "index_p99_ratio": round(ptr["p99_ms"] / same["p99_ms"], 3)
                           if same["p99_ms"] else 0.0})
        quota_dir = Path(tmp) / "quota"
        quota_dir.mkdir()
        result.update(measure_quotas(str(quota_dir), sim_banks, days))
    result["meets_targets"] = (result["search_p99_ms"] <= TARGETS["search_p99_ms"]
                               and result["quota_violations"] == 0)
    return result
