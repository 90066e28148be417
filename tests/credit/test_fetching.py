"""Bank payload formats, and fetchers against simulated banks on the MockClock: quotas respected
under retries over 30 simulated days, backoff, the circuit breaker, local-time schedules, resume
after a crash."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from actors.clock import MockClock
from actors.credit.fetcher import BankFetcher, FetchPolicy, fetch_bank, next_slot
from actors.credit.formats import (
    encode_csv,
    encode_json,
    encode_openbanking_page,
    parse_csv,
    parse_json,
    parse_openbanking_page,
)
from actors.credit.simulation import run_accelerated, world_call
from actors.credit.world import BankWorld, generate_banks, offers_at
from protocols.credit import BankPayloadError

T0 = 1_780_000_000.0  # 2026-05-28, a Thursday


def test_each_payload_format_normalises_to_the_same_offers() -> None:
    banks = generate_banks(72, products=5)
    by_format = {fmt: next(b for b in banks if b.format == fmt)
                 for fmt in ("json", "openbanking", "csv")}
    for fmt, bank in by_format.items():
        offers = offers_at(bank, T0)
        if fmt == "json":
            back = parse_json(bank, encode_json(bank, offers))
        elif fmt == "csv":
            body = encode_csv(bank, offers)
            assert b";" in body and b"%" in body  # decimal comma and a percent sign
            back = parse_csv(bank, body)
        else:
            back, url = [], "first"
            page = 1
            while url is not None:
                found, url = parse_openbanking_page(
                    bank, encode_openbanking_page(bank, offers, page, f"/next?page={page + 1}"))
                back.extend(found)
                page += 1
            assert page - 1 == 3  # 5 products, 2 a page
        assert [o.model_dump() for o in back] == [
            {**o.model_dump(), "apr": round(o.apr, 3)} for o in offers], fmt


@pytest.mark.parametrize("fmt,body", [("json", b'{"products": [{"id": 1}]}'),
                                      ("csv", b"product_id;name\nx;y\n"),
                                      ("json", b"<html>maintenance</html>")])
def test_a_payload_that_does_not_normalise_names_the_bank(fmt: str, body: bytes) -> None:
    bank = next(b for b in generate_banks(72) if b.format == fmt)
    parse = parse_json if fmt == "json" else parse_csv
    with pytest.raises(BankPayloadError, match=bank.bank_id):
        parse(bank, body)


def test_fetching_pages_spends_one_call_per_page_and_stops_at_the_allowance() -> None:
    bank = next(b for b in generate_banks(30, products=5) if b.format == "openbanking")
    clock = MockClock(T0)
    world = BankWorld([bank], clock)
    outcome = asyncio.run(fetch_bank(bank, world_call(world), 10, clock))  # type: ignore[arg-type]
    assert outcome.kind == "ok" and len(outcome.offers) == 5 and world.calls == 3
    short = asyncio.run(fetch_bank(bank, world_call(world), 2, clock))  # type: ignore[arg-type]
    assert short.kind == "budget" and world.calls == 5


def test_thirty_days_of_retries_outages_and_busy_banks_make_no_call_over_quota() -> None:
    banks = generate_banks(24, interval_s=3 * 3600)
    clock = MockClock(T0)
    world = BankWorld(banks, clock, busy_rate=0.05, busy_retry_after_s=120)
    for n, bank in enumerate(banks[:6]):  # outages of 3 h to 2 days
        world.add_outage(bank.bank_id, T0 + 86400 * (n + 1), T0 + 86400 * (n + 1) + 3 * 3600 * 2**n)
    run = asyncio.run(run_accelerated(world, clock, 30, policy=FetchPolicy(
        backoff_first_s=10, cooldown_first_s=300)))
    assert run.violations == 0
    assert run.rate_limited > 50 and run.failed > 20 and run.breaker_opens >= 3
    assert run.ok > 24 * 8 * 30 * 0.9  # the schedule was kept otherwise
    # the record can fail: a naive client that retries at once trips the bank's quota
    naive = BankWorld(banks[:1], clock)
    for _ in range(banks[0].per_minute + 2):
        naive.call(banks[0].bank_id)
    assert naive.violations == 2


def test_a_failing_bank_backs_off_then_the_breaker_opens_and_a_trial_closes_it() -> None:
    bank = generate_banks(1)[0]
    clock = MockClock(T0)
    world = BankWorld([bank], clock)
    world.set_down(bank.bank_id, True)
    policy = FetchPolicy(backoff_first_s=30, breaker_threshold=4, cooldown_first_s=600)
    fetcher = BankFetcher(bank, clock.now, policy)
    call = world_call(world)

    def step() -> str:
        clock.now = max(clock.now, fetcher.due_at())
        granted = fetcher.begin(clock.now)
        outcome = asyncio.run(fetch_bank(bank, call, granted, clock))  # type: ignore[arg-type]
        fetcher.finish(outcome, clock.now)
        return outcome.kind

    waits = []
    for _ in range(3):
        assert step() == "failed"
        waits.append(fetcher.due_at() - clock.now)
    assert waits == [30, 60, 120] and fetcher.status == "retrying"
    assert step() == "failed"
    assert fetcher.breaker == "open" and fetcher.status == "outage"
    assert fetcher.due_at() - clock.now == 600
    calls = world.calls
    assert not fetcher.due(clock.now + 599) and world.calls == calls  # nothing while open
    assert step() == "failed"  # the half-open trial fails: open again, twice as long
    assert fetcher.breaker == "open" and fetcher.due_at() - clock.now == 1200
    world.set_down(bank.bank_id, False)
    assert step() == "ok"
    assert fetcher.breaker == "closed" and fetcher.status == "ok" and fetcher.attempt == 0


def test_schedules_follow_local_time_and_spread_over_the_worlds_day() -> None:
    banks = generate_banks(48, interval_s=6 * 3600)
    for bank in banks:
        slot = next_slot(bank, T0)
        local = dt.datetime.fromtimestamp(slot, ZoneInfo(bank.tz))
        since_midnight = (local.hour * 3600 + local.minute * 60 + local.second
                          + local.microsecond / 1e6)
        off = (since_midnight - bank.phase_s) % bank.interval_s
        assert min(off, bank.interval_s - off) == pytest.approx(0, abs=0.01)
        assert T0 < slot <= T0 + bank.interval_s + 3600
    hours = {int(next_slot(b, T0) // 3600) % 24 for b in banks}
    assert len(hours) >= 5  # the world's fetches are not one burst


def test_a_restarted_fetcher_resumes_its_schedule_and_counts_a_lost_fetch_as_spent() -> None:
    bank = generate_banks(1)[0]
    clock = MockClock(T0)
    fetcher = BankFetcher(bank, clock.now)
    granted = fetcher.begin(clock.now)  # the host dies with this fetch in flight
    saved = fetcher.snapshot()
    again = BankFetcher(bank, clock.now + 5, saved=saved)
    assert again.calls_today == granted and again.budget_left(clock.now + 5) == \
        bank.daily_limit - granted
    assert not again.due(clock.now + 30)  # waits out the minute the lost fetch may have used
    assert again.due(clock.now + 61)
    world = BankWorld([bank], clock)
    clock.now += 61
    n = again.begin(clock.now)
    outcome = asyncio.run(fetch_bank(bank, world_call(world), n, clock))  # type: ignore[arg-type]
    again.finish(outcome, clock.now)
    resumed = BankFetcher(bank, clock.now + 1, saved=again.snapshot())
    assert resumed.due_at() == next_slot(bank, clock.now) and world.violations == 0


def test_over_http_every_format_fetches_and_a_slow_bank_is_a_failed_fetch() -> None:
    import aiohttp

    from actors.credit.bank_api import BankApiServer
    from actors.credit.region import http_call

    banks = [next(b for b in generate_banks(72) if b.format == fmt)
             for fmt in ("json", "openbanking", "csv")]
    world = BankWorld(banks, time_now := MockClock(T0))

    async def scenario() -> list[str]:
        server = BankApiServer(world)
        base = await server.start()
        kinds = []
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as s:
                async def call(bank, page):  # type: ignore[no-untyped-def]
                    return await http_call(s, base, bank, page)
                for bank in banks:
                    outcome = await fetch_bank(bank, call, 10, time_now)
                    assert outcome.offers == offers_at(bank, T0), bank.format
                    kinds.append(outcome.kind)
                world.set_slow(banks[0].bank_id, 2.0)
                world.set_down(banks[0].bank_id, True)
                slow = await fetch_bank(banks[0], call, 10, time_now)
                kinds.append(slow.kind)
                assert "TimeoutError" in slow.reason
        finally:
            await server.stop()
        return kinds

    assert asyncio.run(scenario()) == ["ok", "ok", "ok", "failed"]
    assert world.calls == 1 + 2 + 1 + 1 and world.violations == 0
