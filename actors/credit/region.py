"""``RegionFetchers``: one process actor per region holding every fetcher of the region's banks as a
plain ``BankFetcher`` object (thousands of fetchers are not thousands of processes), supervised by
the region's own supervisor.

Every ``tick_s`` (its own repeating timer) it applies the fetches that finished (offers and bank
statuses into the region's store in one transaction, which bumps the version the search cache keys
on when anything changed), then starts the fetches that are due, each granted its calls by its
fetcher, on an asyncio loop beside the actor (``fetch_bank`` over aiohttp, at most
``max_concurrent`` at a time). Every fetcher's state is saved in the region's store whenever it
begins or finishes a fetch, so a restarted host resumes each schedule, budget, backoff and breaker
where it was (a fetch in flight at the crash counts as having spent all it was granted).

Time: the wall clock moves with ``ActorBehaviour.clock()`` (a ``MockClock`` in deterministic tests
moves schedules and budgets). A fetch's HTTP calls wait real time, bounded by ``fetch_timeout_s``.
An unexpected exception in a fetch or in applying it crashes the host; its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import aiohttp
from pydantic import Field

from actors._loop_thread import LoopThread
from actors.base import Actor
from actors.credit.fetcher import BankFetcher, FetchOutcome, FetchPolicy, fetch_bank
from actors.credit.store import RegionStore
from actors.credit.world import bank_path
from protocols.credit import (
    BankConfig,
    BankSimInfo,
    FetchersReport,
    FetchTick,
    GetBankSimInfo,
    GetFetchers,
    Offer,
    Relocate,
)
from protocols.message import ActorArgs
from protocols.supervision import ExitReason

__all__ = ["RegionFetchers", "RegionFetchersArgs", "http_call"]


async def http_call(session: aiohttp.ClientSession, base_url: str, bank: BankConfig,
                    page: int) -> tuple[int, dict[str, str], bytes]:
    """One call to a bank's product endpoint; a bank that does not answer in the session's
    timeout, or at all, is status 0 with the reason as the body."""
    url = base_url + bank_path(bank)
    if bank.format == "openbanking":
        url += f"?page={page}"
    try:
        async with session.get(url) as response:
            return response.status, dict(response.headers), await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return 0, {}, f"{type(exc).__name__}: {exc}".encode()


class RegionFetchersArgs(ActorArgs):
    region: str
    banks: list[BankConfig]
    storage_url: str
    sims: dict[str, list[str]] = Field(default_factory=dict)   # sim name -> its bank ids
    urls: dict[str, str] = Field(default_factory=dict)         # bank id -> base URL, fixed
    tick_s: float = Field(default=0.25, gt=0)
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    max_concurrent: int = Field(default=64, ge=1)
    policy: dict[str, float] = Field(default_factory=dict)


class RegionFetchers(Actor):
    Args = RegionFetchersArgs
    loop_thread: LoopThread | None = None
    store: RegionStore | None = None

    def on_start(self) -> None:
        args: RegionFetchersArgs = self.typed_args()
        self.region = args.region
        self.timeout = aiohttp.ClientTimeout(total=args.fetch_timeout_s)
        self.max_concurrent = args.max_concurrent
        self.wall0, self.mono0 = time.time(), self.clock()
        self.store = RegionStore(args.storage_url, args.region)
        self.store.register_banks(args.banks)
        saved = self.store.load_states()
        policy = FetchPolicy(**args.policy)  # type: ignore[arg-type]
        now = self.wall()
        self.fetchers = {b.bank_id: BankFetcher(b, now, policy, saved.get(b.bank_id))
                         for b in args.banks}
        self.base_urls: dict[str, str] = dict(args.urls)
        self.sim_of = {bank: sim for sim, banks in args.sims.items() for bank in banks}
        self.in_flight: dict[str, concurrent.futures.Future[FetchOutcome]] = {}
        self.loop_thread = LoopThread(name=f"ptr-fetch{self.path}")
        self.loop_thread.start()
        self.session: aiohttp.ClientSession = self.loop_thread.run(self._open_session(), 5)
        self.sim_peers: dict[str, Any] = {}
        for sim in args.sims:
            self.locate(sim)
        self.start_timer(args.tick_s, FetchTick(), repeat=True)

    async def _open_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=self.timeout,
                                     connector=aiohttp.TCPConnector(limit=self.max_concurrent))

    def on_stop(self, reason: ExitReason) -> None:
        if self.loop_thread is not None:
            if self.loop_thread.running and getattr(self, "session", None) is not None:
                self.loop_thread.run(self.session.close(), 5)
            self.loop_thread.stop()
        if self.store is not None:
            self.store.dispose()

    def wall(self) -> float:
        """Unix seconds that move with the actor clock (a MockClock moves them in tests)."""
        return self.wall0 + (self.clock() - self.mono0)

    def locate(self, sim: str) -> None:
        def found(info: Any) -> None:
            if isinstance(info, BankSimInfo):
                for bank in [b for b, s in self.sim_of.items() if s == sim]:
                    self.base_urls[bank] = info.url
        peer = self.sim_peers.get(sim)
        if peer is None:
            peer = self.sim_peers[sim] = self.peer(sim)
        peer.request(GetBankSimInfo(), found, timeout_s=5.0,
                     on_unavailable=lambda: self.start_timer(0.5, Relocate(sim=sim)))

    def receiveMsg_Relocate(self, msg: Relocate, sender: Any) -> None:
        if sender == self.myAddress:
            self.locate(msg.sim)

    # --- the schedule ---------------------------------------------------------------------------

    def receiveMsg_FetchTick(self, msg: FetchTick, sender: Any) -> None:
        if sender != self.myAddress:
            return
        assert self.store is not None and self.loop_thread is not None
        now = self.wall()
        observed: list[tuple[str, list[Offer], str, float]] = []
        statuses: dict[str, str] = {}
        touched: set[str] = set()
        relocate: set[str] = set()
        for bank_id, future in list(self.in_flight.items()):
            if not future.done():
                continue
            del self.in_flight[bank_id]
            outcome = future.result()  # an unexpected error in a fetch crashes the host
            fetcher = self.fetchers[bank_id]
            fetcher.finish(outcome, now)
            touched.add(bank_id)
            statuses[bank_id] = fetcher.status
            if outcome.kind == "ok":
                observed.append((bank_id, outcome.offers,
                                 f"{self.region}:{bank_id}:{fetcher.fetches}:{now:.0f}", now))
            elif outcome.kind == "failed" and bank_id in self.sim_of:
                relocate.add(self.sim_of[bank_id])
        if observed or statuses:
            self.store.apply(observed, statuses)
        for sim in relocate:
            self.locate(sim)
        loop = self.loop_thread.loop
        for bank_id, fetcher in self.fetchers.items():
            if len(self.in_flight) >= self.max_concurrent:
                break
            base = self.base_urls.get(bank_id)
            if base is None or not fetcher.due(now):
                continue
            granted = fetcher.begin(now)
            touched.add(bank_id)
            if granted:
                self.in_flight[bank_id] = asyncio.run_coroutine_threadsafe(
                    fetch_bank(fetcher.bank, self.http_call, granted, self.wall), loop)
        if touched:
            self.store.save_states({b: self.fetchers[b].snapshot() for b in touched})

    async def http_call(self, bank: BankConfig, page: int) -> tuple[int, dict[str, str], bytes]:
        return await http_call(self.session, self.base_urls[bank.bank_id], bank, page)

    def stats_detail(self) -> list[str]:
        """For ``ptr inspect``: the region's fetchers in one line, then the next few to run."""
        now = self.wall()
        views = sorted((f.view(now) for f in self.fetchers.values()),
                       key=lambda v: v.next_run_at)
        count = {s: sum(v.status == s for v in views) for s in ("ok", "retrying", "outage")}
        lines = [f"{len(views)} fetchers: ok {count['ok']}, retrying {count['retrying']}, "
                 f"outage {count['outage']}, in flight {len(self.in_flight)}, budget left "
                 f"{sum(v.budget_left for v in views)} calls today"]
        lines += [f"{v.bank_id} {v.status:<8} breaker {v.breaker:<9} next run in "
                  f"{max(0.0, v.next_run_at - now):6.0f} s, budget left {v.budget_left}"
                  for v in views[:5]]
        return lines

    def receiveMsg_GetFetchers(self, msg: GetFetchers, sender: Any) -> FetchersReport:
        now = self.wall()
        return FetchersReport(region=self.region,
                              fetchers=[f.view(now) for f in self.fetchers.values()])
