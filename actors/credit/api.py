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
down is 503. Searches run on the edge's loop (``loop_handler``), the SQL on its thread pool; the
search routes the query to its region's database (``regions`` maps each region to its URL).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict

from actors.credit.search import RateLimiter, SearchService, make_cache
from actors.credit.store import RegionStore
from actors.edges import ANSWER_LATER, Answer, Inbound, Route
from actors.edges.http_edge import HttpEdgeActor
from protocols.credit import FetchersReport, GetFetchers, Region, SearchPage, SearchQuery
from protocols.errors import RefusalKind, RefusedError

__all__ = ["CreditSearchApi", "RegionPath", "search_routes"]


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
    return await loop.run_in_executor(None, api.service.search, query)


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


class CreditSearchApi(HttpEdgeActor):
    """Args: ``regions`` ({region: database URL}), ``region_hosts`` ({region: registered name of
    its fetcher host}), ``cache_url`` (empty: in-process; ``redis://...``), ``cache_prefix``,
    ``rate_per_s``, ``burst``, and the edge's (``host``, ``port``...)."""

    def on_start(self) -> None:
        self.args = {"window": 16, "title": "ptr credit offers search", "rate_per_s": 20.0,
                     "burst": 40, "cache_url": "", "cache_prefix": "ptr-credit",
                     "region_hosts": {}, **self.args}
        super().on_start()

    def routes(self) -> list[Route]:
        return search_routes()

    def start_edge(self) -> Any:
        args = self.args
        stores = {str(r): RegionStore(str(url), str(r)) for r, url in dict(args["regions"]).items()}
        self.service = SearchService(stores, make_cache(str(args["cache_url"]),
                                                        str(args["cache_prefix"])))
        self.limiter = RateLimiter(float(args["rate_per_s"]), int(args["burst"]))
        self.region_hosts = {str(k): str(v) for k, v in dict(args["region_hosts"]).items()}
        return super().start_edge()

    def stop_edge(self) -> None:
        try:
            super().stop_edge()
        finally:
            if getattr(self, "service", None) is not None:
                self.service.close()

    def target_names(self) -> list[str]:
        return sorted(self.region_hosts.values())
