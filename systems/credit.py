"""System 5, the credit offers aggregator: bank fetchers on local-time schedules, regional
databases, a cache, and a ranked search API.

    /credit (one_for_one)
    ├── banks/            one_for_one: simulated bank APIs (``simulate``), many banks per process
    │   ├── sim-0         BankSimActor   aiohttp, banks 0, n, 2n, ...
    │   └── ...
    ├── regions/          one_for_one
    │   ├── EU/           one_for_one, the region's supervisor
    │   │   └── fetchers  RegionFetchers  every EU bank's fetcher, a plain object, in one process
    │   ├── US/ ...
    │   └── other/ ...
    └── api               CreditSearchApi  GET /offers, /regions/{region}/fetchers, OpenAPI

Fetchers are plain per-bank objects inside one process actor per region (not light actors): a
fetch is an HTTP exchange on the host's asyncio loop, and the schedule, budget and breaker of a
bank are a few numbers, so the region host is the unit of supervision and persistence.

``ptr run credit --simulate`` starts ``banks`` simulated banks (2,000 by default) over 24 time zones
in ``bank_processes`` processes and prints fetches, offers and budgets once a second. Regional
databases: one SQLite file per region under ``data_dir`` or, with ``storage_url`` set to
``postgresql://...``, a schema per region of that database. The cache is in the API process or in
Redis (``cache_url = "redis://127.0.0.1:6379/0"``). See docs/systems/credit.md.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from actors.credit.api import CreditSearchApi
from actors.credit.bank_api import BankSimActor
from actors.credit.region import RegionFetchers
from actors.credit.store import region_url
from actors.credit.world import generate_banks
from protocols.credit import REGIONS, BankConfig, FetchersReport, GetFetchers
from protocols.errors import PtrError
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec

NAME = "credit"
API = "credit-api"


def sim_name(n: int) -> str:
    return f"credit-banks-{n}"


def region_host(region: str) -> str:
    return f"credit-fetchers-{region.lower()}"


class CreditSettings(SystemSettings):
    """``[credit]`` in a TOML file, or ``--set KEY=VALUE``.

    ``banks`` simulated banks over 24 time zones, served by ``bank_processes`` aiohttp processes;
    each fetched every ``interval_s`` at fixed local times. ``cache_url``: empty for an in-process
    cache, or ``redis://host:port/db``. ``rate_per_s``/``burst``: each client's search rate.
    """

    simulate: bool = True
    banks: int = Field(default=2000, ge=1, le=100_000)
    bank_processes: int = Field(default=2, ge=1, le=32)
    products: int = Field(default=4, ge=1, le=50)
    interval_s: float = Field(default=3600.0, gt=0)
    busy_rate: float = Field(default=0.01, ge=0, le=1)
    host: str = "127.0.0.1"
    api_port: int = Field(default=8450, ge=0, le=65535)
    cache_url: str = ""
    cache_prefix: str = "ptr-credit"
    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    tick_s: float = Field(default=0.25, gt=0)
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    max_concurrent: int = Field(default=64, ge=1)
    backoff_first_s: float = Field(default=30.0, gt=0)
    cooldown_first_s: float = Field(default=600.0, gt=0)

    def world(self) -> list[BankConfig]:
        return generate_banks(self.banks, interval_s=self.interval_s, products=self.products)

    def region_urls(self) -> dict[str, str]:
        return {r: region_url(self.storage_url, self.data_dir, r) for r in REGIONS}


def build_tree(settings: CreditSettings) -> SupervisorSpec:
    banks = settings.world()
    sims = {sim_name(n): [b for b in banks[n::settings.bank_processes]]
            for n in range(settings.bank_processes)} if settings.simulate else {}
    children: list[ChildSpec] = []
    if sims:
        children.append(SupervisorSpec(Strategy.ONE_FOR_ONE, [
            ChildSpec(f"sim-{n}", BankSimActor, {"banks": sims[sim_name(n)],
                                                 "busy_rate": settings.busy_rate, "seed": n},
                      name=sim_name(n))
            for n in range(settings.bank_processes)]).as_child("banks"))
    urls = settings.region_urls()
    policy = {"backoff_first_s": settings.backoff_first_s,
              "cooldown_first_s": settings.cooldown_first_s}
    regions = []
    for region in REGIONS:
        mine = [b for b in banks if b.region == region]
        ids = {b.bank_id for b in mine}
        regions.append(SupervisorSpec(Strategy.ONE_FOR_ONE, [
            ChildSpec("fetchers", RegionFetchers, {
                "region": region, "banks": mine, "storage_url": urls[region],
                "sims": {name: [b.bank_id for b in members if b.bank_id in ids]
                         for name, members in sims.items()},
                "tick_s": settings.tick_s, "fetch_timeout_s": settings.fetch_timeout_s,
                "max_concurrent": settings.max_concurrent, "policy": policy},
                name=region_host(region))]).as_child(region))
    children.append(SupervisorSpec(Strategy.ONE_FOR_ONE, regions).as_child("regions"))
    children.append(ChildSpec("api", CreditSearchApi, {
        "host": settings.host, "port": settings.api_port, "regions": urls,
        "region_hosts": {r: region_host(r) for r in REGIONS}, "cache_url": settings.cache_url,
        "cache_prefix": settings.cache_prefix, "rate_per_s": settings.rate_per_s,
        "burst": settings.burst}, name=API))
    return SupervisorSpec(Strategy.ONE_FOR_ONE, children)


def status(runtime: Any, settings: CreditSettings) -> str:
    """Per region: fetchers ok / retrying / in outage, fetches so far, the soonest next run and
    the budget left over all its banks today."""
    parts = []
    now = time.time()
    for region in REGIONS:
        try:
            report = runtime.ask(region_host(region), GetFetchers(), 2)
        except PtrError as exc:
            parts.append(f"{region}: waiting ({exc})")
            continue
        assert isinstance(report, FetchersReport)
        fs = report.fetchers
        if not fs:
            continue
        count = {s: sum(f.status == s for f in fs) for s in ("ok", "retrying", "outage")}
        soonest = min(f.next_run_at for f in fs)
        parts.append(f"{region}: {len(fs)} fetchers, ok {count['ok']}, retrying "
                     f"{count['retrying']}, outage {count['outage']}, fetches "
                     f"{sum(f.fetches for f in fs)}, next run in {max(0.0, soonest - now):.0f} s, "
                     f"budget left {sum(f.budget_left for f in fs)}")
    return "; ".join(parts)


def edges(settings: CreditSettings) -> list[str]:
    port = settings.api_port or "(a free port)"
    return [f"http://{settings.host}:{port} search: GET /offers?amount=&term_months=&income=&age="
            f"&score_band=&region=, GET /regions/REGION/fetchers, /openapi.json"]


class _SimulatedInTree:
    def stop(self) -> None:
        """The simulated banks stop with the tree."""


def simulator(runtime: Any, settings: CreditSettings) -> Any:
    """``--simulate``: the banks are in the tree already (``simulate``, the default)."""
    return _SimulatedInTree()


def listen_ports(settings: CreditSettings) -> dict[str, int]:
    return {"api_port": settings.api_port} if settings.api_port else {}


SYSTEM = SystemSpec(
    name=NAME, summary="credit offers: bank fetchers on local-time schedules, regional databases, "
    "a cache, ranked search", build_tree=build_tree, settings_model=CreditSettings,
    status=status, edges=edges, simulator=simulator, listen_ports=listen_ports)

__all__ = ["API", "CreditSettings", "NAME", "SYSTEM", "build_tree", "region_host", "sim_name"]
