"""Fetchers against a simulated world at accelerated time: the same ``BankFetcher`` and
``fetch_bank`` the region hosts run, the same ``BankWorld`` the bank processes serve, but calls go
straight to the world and the clock (a ``MockClock`` in Unix seconds) jumps from one due fetch to
the next. Thirty days of a few hundred banks take seconds.

``run_accelerated`` returns the world's call record (``violations``: calls over a quota, the figure
that must be 0), what the fetchers did, and, with a store, ``fresh_ratio``: every simulated hour one
search per region is run and each returned offer counts as fresh when it was observed within its
bank's schedule interval.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from actors.clock import MockClock
from actors.credit.fetcher import BankFetcher, FetchPolicy, fetch_bank
from actors.credit.search import SearchService
from actors.credit.world import BankWorld
from protocols.credit import BankConfig, Offer, SearchQuery

__all__ = ["AcceleratedRun", "run_accelerated", "world_call"]


def world_call(world: BankWorld) -> Callable[..., object]:
    async def call(bank: BankConfig, page: int) -> tuple[int, dict[str, str], bytes]:
        answer = world.call(bank.bank_id, page)
        return answer.status, answer.headers, answer.body
    return call


@dataclass
class AcceleratedRun:
    days: float
    calls: int
    violations: int
    fetches: int
    ok: int
    failed: int
    rate_limited: int
    skipped: int
    breaker_opens: int
    fresh: int = 0
    returned: int = 0
    per_bank_calls: dict[str, int] = field(default_factory=dict)

    @property
    def fresh_ratio(self) -> float:
        return round(self.fresh / self.returned, 4) if self.returned else 0.0


async def run_accelerated(world: BankWorld, clock: MockClock, days: float, *,
                          policy: FetchPolicy | None = None,
                          search: SearchService | None = None, seed: int = 1) -> AcceleratedRun:
    """Run every bank's fetcher for ``days`` of simulated time from ``clock.now``."""
    start = clock.now
    until = start + days * 86400
    fetchers = {b: BankFetcher(bank, clock.now, policy) for b, bank in world.banks.items()}
    heap = [(f.due_at(), b) for b, f in fetchers.items()]
    heapq.heapify(heap)
    call = world_call(world)
    rng = random.Random(seed)
    counts = {"ok": 0, "failed": 0, "rate_limited": 0, "daily_limit": 0, "budget": 0}
    pending: list[tuple[str, list[Offer], str, float]] = []
    statuses: dict[str, str] = {}
    next_hour = start + 3600
    run = AcceleratedRun(days=days, calls=0, violations=0, fetches=0, ok=0, failed=0,
                         rate_limited=0, skipped=0, breaker_opens=0)
    while heap:
        due, bank_id = heapq.heappop(heap)
        fetcher = fetchers[bank_id]
        if due != fetcher.due_at():  # stale entry
            heapq.heappush(heap, (fetcher.due_at(), bank_id))
            continue
        if due >= until:
            break
        while search is not None and due >= next_hour:
            clock.now = next_hour
            _flush(search, world, pending, statuses)
            _sample(search, clock.now, rng, run, world)
            next_hour += 3600
        clock.now = max(clock.now, due)
        allowance = fetcher.begin(clock.now)
        if allowance:
            opens_before = fetcher.opens
            outcome = await fetch_bank(fetcher.bank, call,  # type: ignore[arg-type]
                                       allowance, clock)
            fetcher.finish(outcome, clock.now)
            counts[outcome.kind] += 1
            run.breaker_opens += fetcher.opens > opens_before
            if outcome.kind == "ok":
                pending.append((bank_id, outcome.offers, f"{bank_id}@{clock.now:.0f}", clock.now))
            statuses[bank_id] = fetcher.status
        heapq.heappush(heap, (fetcher.due_at(), bank_id))
    clock.now = max(clock.now, until)
    if search is not None:
        _flush(search, world, pending, statuses)
    run.calls, run.violations = world.calls, world.violations
    run.fetches = sum(counts.values())
    run.ok, run.failed, run.rate_limited = counts["ok"], counts["failed"], counts["rate_limited"]
    run.skipped = sum(f.skipped for f in fetchers.values())
    run.per_bank_calls = {b: s.calls for b, s in world.state.items()}
    return run


def _flush(search: SearchService, world: BankWorld,
           pending: list[tuple[str, list[Offer], str, float]], statuses: dict[str, str]) -> None:
    """Store what the fetches of the last simulated hour found, one transaction per region."""
    observed: dict[str, list[tuple[str, list[Offer], str, float]]] = {}
    status: dict[str, dict[str, str]] = {}
    for item in pending:
        observed.setdefault(world.banks[item[0]].region, []).append(item)
    for bank_id, value in statuses.items():
        status.setdefault(world.banks[bank_id].region, {})[bank_id] = value
    for region, store in search.stores.items():
        store.apply(observed.get(region, []), status.get(region, {}))
    pending.clear()
    statuses.clear()


def _sample(search: SearchService, now: float, rng: random.Random, run: AcceleratedRun,
            world: BankWorld) -> None:
    for region in search.stores:
        query = SearchQuery(amount=rng.choice((3_000, 10_000, 25_000)),
                            term_months=rng.choice((24, 36, 60)), income=5_000, age=40,
                            score_band="A", region=region, page_size=20)  # type: ignore[arg-type]
        for result in search.search(query)["results"]:
            interval = world.banks[result["offer"]["bank_id"]].interval_s
            run.returned += 1
            run.fresh += (now - result["observed_at"]) <= interval
