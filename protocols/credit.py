"""What the credit offers aggregator says: banks, the normalised offer, the search's parameters and
answers, and the messages between its actors (System 5).

A bank (``BankConfig``) has a country, a time zone and a region (EU, US, other), one of three
payload formats, and published quotas: ``per_minute`` calls in any 60 s and ``daily_limit`` calls
per local day. Every format is normalised into one ``Offer``. A search (``SearchQuery``) is the
user's amount, term, income, age, score band and region, plus filters and a page.

Errors of this system (under ``PtrError``, see ``protocols.errors``)::

    PtrError
    └── BankPayloadError          a bank answered a payload that does not normalise (names the bank)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from protocols.errors import PtrError
from protocols.message import Message

REGIONS = ("EU", "US", "other")
Region = Literal["EU", "US", "other"]
PayloadFormat = Literal["json", "openbanking", "csv"]
FORMATS: tuple[str, ...] = ("json", "openbanking", "csv")
SCORE_BANDS = ("A", "B", "C", "D", "E")
ScoreBand = Literal["A", "B", "C", "D", "E"]
PRODUCT_TYPES = ("personal", "car", "home", "student")
ProductType = Literal["personal", "car", "home", "student"]
BankStatus = Literal["ok", "retrying", "outage", "unknown"]


def band_rank(band: str) -> int:
    """A score band as a number, best highest: A 5 ... E 1."""
    return 5 - SCORE_BANDS.index(band)


class BankPayloadError(PtrError):
    """A bank's answer does not normalise into offers (a failed fetch, never a crash)."""

    def __init__(self, bank_id: str, text: str) -> None:
        self.bank_id = bank_id
        super().__init__(f"bank {bank_id}: {text}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BankConfig(_Frozen):
    """One bank as the world knows it. ``interval_s`` is its fetch schedule (slots in its local
    time, shifted by ``phase_s``); ``daily_limit`` and ``per_minute`` are its published quotas."""

    bank_id: str
    name: str
    country: str
    tz: str
    region: Region
    format: PayloadFormat
    products: int = Field(default=4, ge=1, le=200)
    interval_s: float = Field(default=3600.0, gt=0)
    phase_s: float = Field(default=0.0, ge=0)
    daily_limit: int = Field(default=200, ge=1)
    per_minute: int = Field(default=10, ge=1)
    page_size: int = Field(default=2, ge=1)


class Offer(_Frozen):
    """A normalised credit offer."""

    bank_id: str
    product_id: str
    lender: str
    product: str
    product_type: ProductType
    region: Region
    country: str
    min_amount: float = Field(gt=0)
    max_amount: float = Field(gt=0)
    min_term: int = Field(ge=1, description="months")
    max_term: int = Field(ge=1, description="months")
    apr: float = Field(ge=0, le=100, description="nominal yearly rate, %")
    upfront_fee: float = Field(default=0.0, ge=0)
    monthly_fee: float = Field(default=0.0, ge=0)
    origination_pct: float = Field(default=0.0, ge=0, le=20)
    min_income: float = Field(default=0.0, ge=0, description="monthly net income")
    min_age: int = Field(default=18, ge=18)
    max_age: int = Field(default=75, le=120)
    min_score_band: ScoreBand = "E"


RESULT_WINDOW = 10_000
"""How deep pages go (Elasticsearch's ``index.max_result_window`` has the same default)."""


class SearchQuery(_Frozen):
    """``GET /offers``: the user's data, filters and page; an unknown parameter is a 400
    naming it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: float = Field(gt=0, le=10_000_000, description="amount to borrow")
    term_months: int = Field(ge=1, le=480)
    income: float = Field(ge=0, le=10_000_000, description="monthly net income")
    age: int = Field(ge=18, le=120)
    score_band: ScoreBand
    region: Region
    product_type: ProductType | None = None
    lender: str | None = Field(default=None, max_length=200)
    max_apr: float | None = Field(default=None, ge=0, le=100)
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)

    @field_validator("page_size")
    @classmethod
    def _within_the_result_window(cls, page_size: int, info: ValidationInfo) -> int:
        """Pages reach the first ``RESULT_WINDOW`` offers only (a deeper page would rank all of
        them for one answer)."""
        if info.data.get("page", 1) * page_size > RESULT_WINDOW:
            raise ValueError(f"page x page_size must be at most {RESULT_WINDOW:,}")
        return page_size


class CostExplained(_Frozen):
    monthly_payment: float
    interest: float
    upfront_fee: float
    monthly_fees: float
    origination_fee: float
    total_cost: float
    total_repaid: float
    text: str


class OfferResult(_Frozen):
    rank: int
    offer: Offer
    total_cost: float
    cost: CostExplained
    observed_at: float
    age_s: float
    fetch_id: str
    bank_status: BankStatus


class SearchPage(_Frozen):
    region: Region
    page: int
    page_size: int
    has_more: bool
    cached: bool
    ranked_by: Literal["index", "sql"] = Field(
        description="what ranked the page: the API's in-memory index of the region, or the SQL "
                    "on the region's database (while the index loads or catches up)")
    results: list[OfferResult]


# --- between actors ------------------------------------------------------------------------------

class GetBankSimInfo(Message):
    """Ask a bank simulator process where it listens."""


class BankSimInfo(Message):
    url: str
    banks: int


class GetFetchers(Message):
    """Ask a region's fetcher host for the state of its fetchers."""


class FetcherView(_Frozen):
    bank_id: str
    status: BankStatus
    breaker: Literal["closed", "open", "half_open"]
    next_run_at: float
    budget_left: int
    calls_today: int
    fetches: int
    failures: int


class FetchersReport(Message):
    region: str
    fetchers: list[FetcherView]


class FetchTick(Message):
    """The region host's own timer: start what is due, apply what finished."""


class Relocate(Message):
    """The region host's own timer: ask a bank simulator where it listens again."""

    sim: str


__all__ = ["BankConfig", "BankPayloadError", "BankSimInfo", "BankStatus",
           "CostExplained",
           "FORMATS", "FetchTick", "FetcherView", "FetchersReport", "GetBankSimInfo",
           "GetFetchers", "Offer", "Relocate", "OfferResult", "PRODUCT_TYPES", "PayloadFormat",
           "ProductType", "REGIONS", "RESULT_WINDOW", "Region", "SCORE_BANDS", "ScoreBand", "SearchPage",
           "SearchQuery", "band_rank"]
