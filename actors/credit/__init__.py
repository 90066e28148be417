"""The credit offers aggregator's actors (System 5). Read ``world`` (the simulated banks) and
``fetcher`` (one bank's schedule, budget, backoff and breaker) first, then ``store`` (a region's
database), ``search`` (ranking, cache, rate limits) and the actors: ``bank_api`` (bank processes),
``region`` (one process per region holding its banks' fetchers as plain objects), ``api``.
"""

from actors.credit.fetcher import BankFetcher, FetchOutcome, FetchPolicy, fetch_bank, next_slot
from actors.credit.search import LocalCache, RedisCache, SearchService
from actors.credit.store import RegionStore, region_url
from actors.credit.world import BankWorld, generate_banks

__all__ = ["BankFetcher", "BankWorld", "FetchOutcome", "FetchPolicy", "LocalCache",
           "RedisCache", "RegionStore", "SearchService", "fetch_bank", "generate_banks",
           "next_slot", "region_url"]
