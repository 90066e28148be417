"""The search API: the kit's HTTP edge (``HttpEdgeActor``) with declared routes and OpenAPI.

    GET /offers?amount=&term_months=&income=&age=&score_band=&region=
               [&product_type=&lender=&max_apr=&page=&page_size=]
        eligible offers of the region's banks ranked by total cost of credit, each explained, with
        when it was observed, its age and the bank's current status (``SearchPage``)
    GET /regions/{region}/fetchers   the region's fetchers: status, breaker, next run, budget left
    GET /health, GET /metrics, GET /openapi.json   as every ptr edge

Errors are the edge's JSON problem bodies (``error``, ``refusal``, ``fields``): a bad or unknown
parameter is a 400 whose ``fields`` name it; a client over its rate (a token bucket per client
address, ``rate_per_s``/``burst``) gets 429 with ``Retry-After``; a region whose fetcher host is
down is 503. Searches run on the edge's loop (``loop_handler``), the ranking and the reads on
the API's own thread pool (``search_threads``); the search routes the query to its region's
database (``regions`` maps each region to its URL) and ranks by the region's in-memory index
once loaded (``actors.credit.index``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.credit.search import SearchService, make_cache
from actors.credit.store import RegionStore
from actors.edges import ANSWER_LATER, Answer, Inbound, Route
from actors.edges.http_edge import HttpEdgeActor, HttpEdgeArgs
from actors.edges.limits import RateLimiter, RateRules
from protocols.credit import FetchersReport, GetFetchers, Region, SearchPage, SearchQuery
from protocols.errors import RefusalKind, RefusedError

__all__ = ["CreditSearchApi", "CreditSearchApiArgs", "RegionPath", "search_routes"]


class RegionPath(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    region: Region


async def search_offers(api: CreditSearchApi, inbound: Inbound) -> dict[str, Any]:
    wait = api.limiter.take(inbound.peer)
    if wait:
        raise RefusedError("rate limit exceeded for this client", refusal=RefusalKind.TOO_MANY,
                           retry_after_s=wait, client=inbound.peer)
    query: SearchQuery = inbound.params
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(api.searchers, api.service.search, query)


def region_fetchers(api: CreditSearchApi, inbound: Inbound) -> Any:
    region = inbound.params.region
    name = api.region_hosts.get(region)
    if name is None:
        raise RefusedError("no fetchers in this region", refusal=RefusalKind.NOT_FOUND,
                           region=region)
    pending = inbound.pending
    api.ask_target(name, GetFetchers(), pending.resolve, pending.fail, 5.0)
    return ANSWER_LATER


def search_routes() -> list[Route]:
    return [
        Route("GET", "/offers", answer=Answer.REPLY, name="offers", params=SearchQuery,
              response=SearchPage, loop_handler=search_offers,
              refuses=(RefusalKind.TOO_MANY,),
              summary="eligible offers ranked by total cost of credit"),
        Route("GET", "/regions/{region}/fetchers", answer=Answer.REPLY, name="fetchers",
              params=RegionPath, response=FetchersReport, handler=region_fetchers,
              timeout_s=6.0, refuses=(RefusalKind.NOT_FOUND,),
              summary="the region's fetchers: status, next run, budget left"),
    ]


class CreditSearchApiArgs(HttpEdgeArgs):
    """``regions`` ({region: database URL}), ``region_hosts`` ({region: registered name of its
    fetcher host}), ``cache_url`` (empty: in-process; ``redis://...``), ``cache_prefix``,
    ``rate_per_s`` and ``burst`` (per client), ``search_threads``, and the edge's (``host``,
    ``port``...).

    ``search_threads``: the searches' own thread pool beside the edge's loop. A search is Python
    and numpy holding the GIL most of the time, so more threads only take turns: with 4 clients
    over 1,000,000 offers on the project's 2-core machine, 1/2/3/6 threads served 288/230/233/186
    searches/s at p99 23/40/49/62 ms (2026-12-05, under a profiler). Raise it for a database
    whose reads wait on the network (PostgreSQL on another host)."""

    regions: dict[str, str]
    region_hosts: dict[str, str] = Field(default_factory=dict)
    cache_url: str = ""
    cache_prefix: str = "ptr-credit"
    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    window: int = Field(default=16, ge=1)
    search_threads: int = Field(default=1, ge=1, le=64)
    title: str | None = "ptr credit offers search"


class CreditSearchApi(HttpEdgeActor):
    """The search API as a supervised HTTP edge; args: ``CreditSearchApiArgs``."""

    Args = CreditSearchApiArgs

    def routes(self) -> list[Route]:
        return search_routes()

    def start_edge(self) -> Any:
        args: CreditSearchApiArgs = self.edge_args
        stores = {region: RegionStore(url, region) for region, url in args.regions.items()}
        self.service = SearchService(stores, make_cache(args.cache_url, args.cache_prefix))
        self.limiter = RateLimiter(RateRules(args.burst, args.rate_per_s), self.clock)
        self.searchers = ThreadPoolExecutor(args.search_threads, thread_name_prefix="search")
        self.region_hosts = dict(args.region_hosts)
        return super().start_edge()

    def stop_edge(self) -> None:
        try:
            super().stop_edge()
        finally:
            if getattr(self, "searchers", None) is not None:
                self.searchers.shutdown(wait=False, cancel_futures=True)
            if getattr(self, "service", None) is not None:
                self.service.close()

    def stats_detail(self) -> list[str]:
        """For ``ptr inspect``: the regions' indexes and how searches were ranked."""
        service = getattr(self, "service", None)
        return service.index_lines() if service is not None else []

    def target_names(self) -> list[str]:
        return sorted(self.region_hosts.values())
