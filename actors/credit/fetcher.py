"""One bank's fetcher as a plain object: its schedule in the bank's local time, its call budget
with a reserve, backoff, a circuit breaker, and the fetch itself (an async function over an
injected call).

Budget rules (never exceeded, even across a crash):

* a day is the bank's local day; at most ``daily_limit`` calls in it, of which ``reserve`` only
  retries may spend (a scheduled fetch that would dig into the reserve is skipped to its next slot);
* at most ``per_minute`` calls in any 60 s: ``begin`` grants a fetch at most what the last 60 s
  leave, and one fetch runs at a time per bank, so no window can hold more;
* a 429 stops the fetch and nothing is called again before its ``Retry-After``; "daily limit
  exceeded" waits for the bank's local midnight;
* ``begin`` counts the calls it grants as spent until ``finish`` reports the calls actually made,
  and the host persists the state at ``begin``: a host that dies mid-fetch restarts believing the
  worst.

Failures (unreachable, 5xx, a payload that does not normalise) retry after
``backoff_delay(first, max, attempt)`` on the reserve; after ``breaker_threshold`` consecutive
ones the breaker opens (status ``outage``) for a cooldown that doubles each time it reopens; after
the cooldown one trial fetch (half open) closes it or opens it again.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from actors.clock import backoff_delay
from actors.credit.formats import parse_csv, parse_json, parse_openbanking_page
from actors.credit.world import local_day
from protocols.credit import BankConfig, BankPayloadError, BankStatus, FetcherView, Offer

__all__ = ["BankFetcher", "Call", "FetchOutcome", "FetchPolicy", "fetch_bank", "next_slot"]

Call = Callable[[BankConfig, int], Awaitable[tuple[int, dict[str, str], bytes]]]
"""``call(bank, page) -> (status, headers, body)``; status 0 for a bank that did not answer."""


@dataclass(frozen=True)
class FetchPolicy:
    reserve_fraction: float = 0.25
    backoff_first_s: float = 30.0
    backoff_max_s: float = 900.0
    breaker_threshold: int = 4
    cooldown_first_s: float = 600.0
    cooldown_max_s: float = 6 * 3600.0


@dataclass
class FetchOutcome:
    kind: Literal["ok", "failed", "rate_limited", "daily_limit", "budget"]
    call_times: list[float]
    offers: list[Offer] = field(default_factory=list)
    retry_after_s: float = 0.0
    reason: str = ""


def next_slot(bank: BankConfig, now: float) -> float:
    """The first schedule slot after ``now``: local midnight + phase + k * interval, restarting
    every local day (so a bank fetches at the same local hours every day, DST included)."""
    tz = ZoneInfo(bank.tz)
    local = dt.datetime.fromtimestamp(now, tz)
    for day in (local.date(), local.date() + dt.timedelta(days=1)):
        midnight = dt.datetime.combine(day, dt.time(), tz).timestamp()
        following = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).timestamp()
        k = max(0, int((now - midnight - bank.phase_s) // bank.interval_s) + 1)
        slot = midnight + bank.phase_s + k * bank.interval_s
        if slot <= now:
            slot += bank.interval_s
        if slot < following:
            return slot
    return following + bank.phase_s  # unreachable: the next day's first slot is after now


def _local_midnight_after(bank: BankConfig, now: float) -> float:
    tz = ZoneInfo(bank.tz)
    day = dt.datetime.fromtimestamp(now, tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tz).timestamp()


class BankFetcher:
    """The schedule, budget, backoff and breaker of one bank; no I/O (see ``fetch_bank``)."""

    def __init__(self, bank: BankConfig, now: float, policy: FetchPolicy | None = None,
                 saved: dict[str, Any] | None = None) -> None:
        self.bank = bank
        self.policy = policy or FetchPolicy()
        self.reserve = max(1, int(bank.daily_limit * self.policy.reserve_fraction))
        self.next_run_at = now  # first start: fetch at once, then follow the schedule
        self.not_before = 0.0
        self.day: dt.date | None = None
        self.calls_today = 0
        self.minute: deque[float] = deque()
        self.attempt = 0
        self.retrying = False
        self.breaker: Literal["closed", "open", "half_open"] = "closed"
        self.open_until = 0.0
        self.opens = 0
        self.status: BankStatus = "unknown"
        self.in_flight_since: float | None = None
        self.granted = 0
        self.fetches = self.failures = self.skipped = 0
        self.last_success_at = 0.0
        if saved is not None:
            self._restore(saved, now)

    # --- persistence ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"next_run_at": self.next_run_at, "not_before": self.not_before,
                "day": self.day.isoformat() if self.day else None,
                "calls_today": self.calls_today, "minute": list(self.minute),
                "attempt": self.attempt, "retrying": self.retrying, "breaker": self.breaker,
                "open_until": self.open_until, "opens": self.opens, "status": self.status,
                "in_flight_since": self.in_flight_since, "fetches": self.fetches,
                "failures": self.failures, "last_success_at": self.last_success_at}

    def _restore(self, saved: dict[str, Any], now: float) -> None:
        self.next_run_at = float(saved["next_run_at"])
        self.not_before = float(saved["not_before"])
        self.day = dt.date.fromisoformat(saved["day"]) if saved["day"] else None
        self.calls_today = int(saved["calls_today"])
        self.minute = deque(float(t) for t in saved["minute"])
        self.attempt, self.retrying = int(saved["attempt"]), bool(saved["retrying"])
        self.breaker, self.open_until = saved["breaker"], float(saved["open_until"])
        self.opens, self.status = int(saved["opens"]), saved["status"]
        self.fetches, self.failures = int(saved["fetches"]), int(saved["failures"])
        self.last_success_at = float(saved["last_success_at"])
        since = saved["in_flight_since"]
        if since is not None:  # died mid-fetch: its granted calls stay spent; wait out the minute
            self.not_before = max(self.not_before, float(since) + 60.0)
            for _ in range(self.bank.per_minute):
                self.minute.append(float(since))

    # --- budget -----------------------------------------------------------------------------------

    def _roll(self, now: float) -> None:
        today = local_day(self.bank, now)
        if self.day != today:
            self.day, self.calls_today = today, 0
        while self.minute and self.minute[0] <= now - 60:
            self.minute.popleft()

    def budget_left(self, now: float) -> int:
        self._roll(now)
        return self.bank.daily_limit - self.calls_today

    # --- the schedule -----------------------------------------------------------------------------

    def due_at(self) -> float:
        at = max(self.next_run_at, self.not_before)
        return max(at, self.open_until) if self.breaker == "open" else at

    def due(self, now: float) -> bool:
        return self.in_flight_since is None and now >= self.due_at()

    def begin(self, now: float) -> int:
        """Grant a fetch due now its calls (0: none, it was rescheduled). Counts them as spent."""
        self._roll(now)
        if self.breaker == "open":
            self.breaker = "half_open"
        retry = self.retrying or self.breaker == "half_open"
        daily = self.bank.daily_limit - self.calls_today - (0 if retry else self.reserve)
        minute = self.bank.per_minute - len(self.minute)
        allowance = min(daily, minute)
        if allowance <= 0:
            self.skipped += 1
            if daily <= 0:  # spent for today: the first slot of the next local day
                self.next_run_at = next_slot(self.bank, _local_midnight_after(self.bank, now) - 1)
                self.retrying = False
            else:
                self.not_before = self.minute[0] + 60
            if self.breaker == "half_open":
                self.breaker = "open"
            return 0
        self.in_flight_since = now
        self.granted = allowance
        self.calls_today += allowance
        for _ in range(allowance):
            self.minute.append(now)
        return allowance

    def finish(self, outcome: FetchOutcome, now: float) -> None:
        """Account for the calls made and decide what comes next."""
        since = self.in_flight_since if self.in_flight_since is not None else now
        self.in_flight_since = None
        self.calls_today -= self.granted
        for _ in range(self.granted):
            if since not in self.minute:  # already older than the window
                break
            self.minute.remove(since)
        self.granted = 0
        for at in outcome.call_times:
            self._roll(at)
            self.calls_today += 1
            self.minute.append(at)
        self._roll(now)
        self.fetches += 1
        policy = self.policy
        if outcome.kind == "ok":
            self.attempt, self.retrying = 0, False
            self.breaker, self.opens, self.status = "closed", 0, "ok"
            self.last_success_at = now
            self.next_run_at = next_slot(self.bank, now)
        elif outcome.kind == "rate_limited":
            self.not_before = now + max(outcome.retry_after_s, 1.0)
            self.retrying = True
            if self.status == "unknown":
                self.status = "retrying"
            if self.breaker == "half_open":
                self.breaker = "open"
        elif outcome.kind == "daily_limit":
            self.not_before = _local_midnight_after(self.bank, now)
            self.next_run_at = next_slot(self.bank, self.not_before - 1)
            self.retrying = False
        elif outcome.kind == "budget":
            self.not_before = self.minute[0] + 60 if self.minute else now + 60
        else:
            self.failures += 1
            self.attempt += 1
            if self.breaker == "half_open" or self.attempt >= policy.breaker_threshold:
                self.breaker = "open"
                self.open_until = now + backoff_delay(policy.cooldown_first_s,
                                                      policy.cooldown_max_s, self.opens)
                self.opens += 1
                self.status = "outage"
                self.retrying = True
                self.next_run_at = self.open_until
            else:
                self.status = "retrying" if self.status != "outage" else "outage"
                self.retrying = True
                self.next_run_at = now + backoff_delay(policy.backoff_first_s,
                                                       policy.backoff_max_s, self.attempt - 1)

    def view(self, now: float) -> FetcherView:
        return FetcherView(bank_id=self.bank.bank_id, status=self.status, breaker=self.breaker,
                           next_run_at=self.due_at(), budget_left=self.budget_left(now),
                           calls_today=self.calls_today, fetches=self.fetches,
                           failures=self.failures)


def _retry_after(headers: dict[str, str]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return 60.0
    return 60.0


async def fetch_bank(bank: BankConfig, call: Call, allowance: int,
                     clock: Callable[[], float]) -> FetchOutcome:
    """Fetch every product of ``bank`` with at most ``allowance`` calls (pages count)."""
    times: list[float] = []
    offers: list[Offer] = []
    page = 1
    while True:
        if len(times) >= allowance:
            return FetchOutcome("budget", times, reason="allowance spent mid-fetch")
        times.append(clock())
        status, headers, body = await call(bank, page)
        if status == 429:
            return FetchOutcome("rate_limited", times, retry_after_s=_retry_after(headers))
        if status == 403 and b"DAILY_LIMIT" in body:
            return FetchOutcome("daily_limit", times)
        if status != 200:
            return FetchOutcome("failed", times, reason=f"HTTP {status}" if status
                                else body.decode(errors="replace")[:200])
        try:
            if bank.format == "json":
                return FetchOutcome("ok", times, parse_json(bank, body))
            if bank.format == "csv":
                return FetchOutcome("ok", times, parse_csv(bank, body))
            found, next_url = parse_openbanking_page(bank, body)
        except BankPayloadError as exc:
            return FetchOutcome("failed", times, reason=str(exc))
        offers.extend(found)
        if next_url is None:
            return FetchOutcome("ok", times, offers)
        page += 1
