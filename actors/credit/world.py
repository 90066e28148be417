"""A world of simulated banks as real ones behave (plain Python, driven by an injected wall clock).

``generate_banks`` spreads banks over 24 time zones in three regions, each with one of three payload
formats, published quotas, and a fetch schedule whose slots fall at different hours of the world's
day. ``BankWorld.call`` answers one API call the way a bank does and records it:

* offers change over the day: rates move every six hours of the bank's local time (and whenever a
  test calls ``bump``);
* quotas: more than ``per_minute`` calls in any 60 s gets 429 with ``Retry-After``; more than
  ``daily_limit`` calls in the bank's local day gets 403 "daily limit exceeded"; now and then a
  bank answers 429 with ``Retry-After`` although the caller is within quota (the bank is busy), and
  calling again before that wait is over is a violation too. Every violation is counted;
* outages (503) and slow answers, scheduled (``outage``) or drawn at random (``outage_rate``).

``violations`` is what the quota tests and the bench read: calls a fetcher should not have made.
``actors.credit.bank_api`` serves this object over aiohttp.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from actors.credit.formats import encode_csv, encode_json, encode_openbanking_page
from protocols.credit import PRODUCT_TYPES, SCORE_BANDS, BankConfig, Offer

__all__ = ["BankWorld", "SimAnswer", "ZONES", "generate_banks", "local_day", "offers_at"]

ZONES: tuple[tuple[str, str, str], ...] = (
    ("Europe/Lisbon", "PT", "EU"), ("Europe/Paris", "FR", "EU"), ("Europe/Berlin", "DE", "EU"),
    ("Europe/Warsaw", "PL", "EU"), ("Europe/Athens", "GR", "EU"), ("Europe/Helsinki", "FI", "EU"),
    ("Europe/Madrid", "ES", "EU"), ("Europe/Dublin", "IE", "EU"),
    ("America/New_York", "US", "US"), ("America/Chicago", "US", "US"),
    ("America/Denver", "US", "US"), ("America/Los_Angeles", "US", "US"),
    ("America/Anchorage", "US", "US"), ("Pacific/Honolulu", "US", "US"),
    ("Asia/Tokyo", "JP", "other"), ("Asia/Kolkata", "IN", "other"),
    ("Australia/Sydney", "AU", "other"), ("America/Sao_Paulo", "BR", "other"),
    ("Africa/Lagos", "NG", "other"), ("Asia/Dubai", "AE", "other"),
    ("Asia/Singapore", "SG", "other"), ("Pacific/Auckland", "NZ", "other"),
    ("America/Mexico_City", "MX", "other"), ("Asia/Shanghai", "CN", "other"),
)
_RANGES = {"personal": (1_000, 50_000, 6, 84, 6.0), "car": (5_000, 80_000, 12, 96, 4.5),
           "home": (2_000, 100_000, 12, 180, 5.0), "student": (500, 40_000, 12, 120, 3.5)}


def generate_banks(count: int, seed: int = 5, *, interval_s: float = 3600.0,
                   products: int = 4) -> list[BankConfig]:
    """``count`` banks round-robin over ``ZONES`` (so three regions), formats in turn. Each bank's
    quotas leave room for its schedule: a fetch costs at most ``pages`` calls, a day has
    ``86400 / interval_s`` slots, and the daily limit is twice that plus a reserve."""
    rng = random.Random(seed)
    banks = []
    formats = ("json", "openbanking", "csv")
    for n in range(count):
        tz, country, region = ZONES[n % len(ZONES)]
        fmt = formats[(n // len(ZONES)) % 3]
        page_size = 2
        pages = -(-products // page_size) if fmt == "openbanking" else 1
        slots = int(86400 / interval_s) + 1
        banks.append(BankConfig(
            bank_id=f"bank-{n:05d}", name=f"{country} Bank {n}", country=country, tz=tz,
            region=region, format=fmt,  # type: ignore[arg-type]
            products=products, interval_s=interval_s,
            phase_s=rng.uniform(0, interval_s), daily_limit=2 * slots * pages + 20,
            per_minute=max(3, pages + 2), page_size=page_size))
    return banks


def local_day(bank: BankConfig, now: float) -> dt.date:
    """The bank's local date at ``now`` (Unix seconds): its daily limit resets at local midnight."""
    return dt.datetime.fromtimestamp(now, ZoneInfo(bank.tz)).date()


def offers_at(bank: BankConfig, now: float, bump: int = 0) -> list[Offer]:
    """The bank's offers at ``now``: fixed products whose rates move every 6 local hours."""
    local = dt.datetime.fromtimestamp(now, ZoneInfo(bank.tz))
    return _offers_in_block(bank, local.toordinal() * 4 + local.hour // 6 + bump)


@functools.lru_cache(maxsize=4096)
def _offers_in_block(bank: BankConfig, block: int) -> list[Offer]:
    seed = int(bank.bank_id.rsplit("-", 1)[-1])
    out = []
    for p in range(bank.products):
        rng = random.Random(seed * 1000 + p)
        kind = PRODUCT_TYPES[(seed + p) % len(PRODUCT_TYPES)]
        lo, hi, tlo, thi, base = _RANGES[kind]
        move = random.Random(seed * 1000 + p + block * 7919).uniform(-0.5, 0.5)
        out.append(Offer(
            bank_id=bank.bank_id, product_id=f"p{p}", lender=bank.name,
            product=f"{kind.title()} loan {p}", product_type=kind,  # type: ignore[arg-type]
            region=bank.region, country=bank.country,
            min_amount=float(lo * rng.choice((1, 2))), max_amount=float(hi * rng.choice((1, 2))),
            min_term=tlo, max_term=thi * rng.choice((1, 2)) // 2 + tlo,
            apr=round(base + rng.uniform(0, 8) + move, 3),
            upfront_fee=float(rng.choice((0, 0, 50, 150, 300))),
            monthly_fee=float(rng.choice((0, 0, 2, 5))),
            origination_pct=round(rng.choice((0.0, 0.0, 1.0, 2.5)), 3),
            min_income=float(rng.choice((0, 800, 1500, 2500, 4000))),
            min_age=rng.choice((18, 18, 21, 25)), max_age=rng.choice((65, 70, 75)),
            min_score_band=rng.choice(SCORE_BANDS[1:])))  # type: ignore[arg-type]
    return out


@dataclass
class SimAnswer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class _BankState:
    minute: deque[float] = field(default_factory=deque)
    day: dt.date | None = None
    day_calls: int = 0
    embargo_until: float = 0.0
    calls: int = 0
    violations: int = 0
    outages: list[tuple[float, float]] = field(default_factory=list)
    down: bool = False
    slow_s: float = 0.0
    bump: int = 0


class BankWorld:
    """Every simulated bank's behaviour and call record. ``clock`` gives Unix seconds (a
    ``MockClock`` in accelerated tests). ``busy_rate`` is the chance that a call within quota
    is refused 429 for ``busy_retry_after_s`` anyway."""

    def __init__(self, banks: list[BankConfig], clock: Callable[[], float], *, seed: int = 3,
                 busy_rate: float = 0.0, busy_retry_after_s: float = 30.0) -> None:
        self.banks = {b.bank_id: b for b in banks}
        self.clock = clock
        self.rng = random.Random(seed)
        self.busy_rate = busy_rate
        self.busy_retry_after_s = busy_retry_after_s
        self.state = {b.bank_id: _BankState() for b in banks}

    # --- what tests and the system change ---------------------------------------------------------

    def set_down(self, bank_id: str, down: bool) -> None:
        self.state[bank_id].down = down

    def set_slow(self, bank_id: str, seconds: float) -> None:
        self.state[bank_id].slow_s = seconds

    def add_outage(self, bank_id: str, start: float, end: float) -> None:
        self.state[bank_id].outages.append((start, end))

    def bump(self, bank_id: str) -> None:
        """Change the bank's offers now (a new rate card)."""
        self.state[bank_id].bump += 1

    def offers(self, bank_id: str) -> list[Offer]:
        return offers_at(self.banks[bank_id], self.clock(), self.state[bank_id].bump)

    # --- the record -----------------------------------------------------------------------------

    @property
    def violations(self) -> int:
        return sum(s.violations for s in self.state.values())

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.state.values())

    # --- one call -------------------------------------------------------------------------------

    def call(self, bank_id: str, page: int = 1, base_url: str = "") -> SimAnswer:
        """Answer one call to the bank's product endpoint (``page`` for open-banking)."""
        bank = self.banks.get(bank_id)
        if bank is None:
            return SimAnswer(404, b'{"error":"no such bank"}')
        now = self.clock()
        st = self.state[bank_id]
        st.calls += 1
        window = st.minute
        while window and window[0] <= now - 60:
            window.popleft()
        window.append(now)
        today = local_day(bank, now)
        if st.day != today:
            st.day, st.day_calls = today, 0
        st.day_calls += 1
        if now < st.embargo_until:
            st.violations += 1
            return _too_many(st.embargo_until - now)
        if len(window) > bank.per_minute:
            st.violations += 1
            return _too_many(window[0] + 60 - now)
        if st.day_calls > bank.daily_limit:
            st.violations += 1
            return SimAnswer(403, b'{"error":"daily limit exceeded","code":"DAILY_LIMIT"}')
        if st.down or any(start <= now < end for start, end in st.outages):
            return SimAnswer(503, b'{"error":"service unavailable"}', delay_s=st.slow_s)
        if self.busy_rate and self.rng.random() < self.busy_rate:
            st.embargo_until = now + self.busy_retry_after_s
            return _too_many(self.busy_retry_after_s)
        offers = offers_at(bank, now, st.bump)
        if bank.format == "json":
            body = encode_json(bank, offers)
        elif bank.format == "openbanking":
            body = encode_openbanking_page(bank, offers, page,
                                           f"{base_url}{bank_path(bank)}?page={page + 1}")
        else:
            return SimAnswer(200, encode_csv(bank, offers), "text/csv", delay_s=st.slow_s)
        return SimAnswer(200, body, delay_s=st.slow_s)


def bank_path(bank: BankConfig) -> str:
    """The product endpoint's path for the bank's format."""
    if bank.format == "json":
        return f"/banks/{bank.bank_id}/products"
    if bank.format == "openbanking":
        return f"/banks/{bank.bank_id}/open-banking/v3.1/products"
    return f"/banks/{bank.bank_id}/offers.csv"


def _too_many(wait_s: float) -> SimAnswer:
    seconds = max(1, int(wait_s + 0.999))
    return SimAnswer(429, b'{"error":"too many requests"}', headers={"Retry-After": str(seconds)})
