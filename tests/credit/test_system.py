"""The credit system as it runs: simulated bank processes, one fetcher host per region, the search
API over HTTP (real processes, multiprocTCPBase), and ``ptr run credit --simulate``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from protocols.errors import ActorSystemError
from systems import inspect
from protocols.credit import BankSimInfo, FetchersReport, GetBankSimInfo, GetFetchers
from protocols.edges import EdgeInfo, GetEdgeInfo
from systems.credit import API, SYSTEM, CreditSettings, region_host, sim_name
from tests.support.clients import Answered, call

ROOT = Path(__file__).resolve().parents[2]
USER = {"amount": 5000, "term_months": 24, "income": 9000, "age": 40, "score_band": "A"}


def settings(tmp_path: Path, **overrides: Any) -> CreditSettings:
    values: dict[str, Any] = {"data_dir": str(tmp_path), "api_port": 0, "banks": 24,
                              "bank_processes": 1, "busy_rate": 0.0, "interval_s": 2.0,
                              "tick_s": 0.1, "backoff_first_s": 0.2, "cooldown_first_s": 0.5,
                              "fetch_timeout_s": 2.0, "rate_per_s": 50.0, "burst": 50}
    values.update(overrides)
    made = SYSTEM.settings(overrides=values)
    assert isinstance(made, CreditSettings)
    return made


def search(url: str, **params: Any) -> Answered:
    return call(f"{url}/offers?{urllib.parse.urlencode({**USER, **params})}")


def fetchers(rt: Any, region: str) -> FetchersReport:
    report = rt.ask(region_host(region), GetFetchers(), 5)
    assert isinstance(report, FetchersReport)
    return report


def test_fetched_offers_are_searched_per_region_with_outages_changes_and_bad_input(
        make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path)), base="multiproc", name="credit")
    info = rt.ask(API, GetEdgeInfo(), 10)
    assert isinstance(info, EdgeInfo)
    url = info.url
    for region in ("EU", "US", "other"):
        rt.wait_for(lambda r=region: all(f.status == "ok" for f in fetchers(rt, r).fetchers),
                    timeout_s=30, interval_s=0.1, what=f"{region} fetched")
    # regional routing: each region's search returns its own banks only
    seen: dict[str, set[str]] = {}
    for region in ("EU", "US", "other"):
        answer = search(url, region=region, page_size=100)
        assert answer.status == 200, answer
        seen[region] = {r["offer"]["country"] for r in answer.json["results"]}
        assert {r["offer"]["region"] for r in answer.json["results"]} == {region}
    assert "US" in seen["US"] and "US" not in seen["EU"] and "FR" in seen["EU"]
    # bad input: 400 naming the field; an unknown parameter is named too
    bad = search(url, region="EU", amount=-5)
    assert bad.status == 400 and [f["field"] for f in bad.json["fields"]] == ["amount"]
    unknown = search(url, region="EU", colour="red")
    assert unknown.status == 400 and "colour" in json.dumps(unknown.json["fields"])
    assert search(url, region="Mars").status == 400
    deep = search(url, region="EU", page=101, page_size=100)  # past the first 10,000 results
    assert deep.status == 400 and [f["field"] for f in deep.json["fields"]] == ["page_size"]
    assert search(url, region="EU", page=100, page_size=100).status == 200
    # an outage: the bank's offers are still served, with its status and growing age
    sim = rt.ask(sim_name(0), GetBankSimInfo(), 5)
    assert isinstance(sim, BankSimInfo)
    page = search(url, region="EU", page_size=100).json["results"]
    victim = page[0]["offer"]["bank_id"]
    assert call(f"{sim.url}/control/{victim}", {"down": True}).status == 200
    rt.wait_for(lambda: next(f for f in fetchers(rt, "EU").fetchers
                             if f.bank_id == victim).status != "ok",
                timeout_s=30, interval_s=0.1, what="bank seen failing")
    stale = [r for r in search(url, region="EU", page_size=100).json["results"]
             if r["offer"]["bank_id"] == victim]
    assert stale and all(r["bank_status"] in ("retrying", "outage") for r in stale)
    assert all(r["age_s"] > 0 for r in stale)
    # a change at the bank reaches the search at its next fetch (the cache is invalidated)
    assert call(f"{sim.url}/control/{victim}", {"down": False, "bump": True}).status == 200
    before = {r["offer"]["product_id"]: r["offer"]["apr"] for r in stale}

    def changed() -> bool:
        now = [r for r in search(url, region="EU", page_size=100).json["results"]
               if r["offer"]["bank_id"] == victim]
        return bool(now) and now[0]["bank_status"] == "ok" and \
            {r["offer"]["product_id"]: r["offer"]["apr"] for r in now} != before
    # a bank allows 3 calls in any 60 s and is fetched every 2 s here: the outage's failed calls
    # may have spent this minute, and the fetcher never calls over quota, so the new rates
    # arrive at the next allowed fetch, up to a minute later
    rt.wait_for(changed, timeout_s=75, interval_s=0.2, what="new rates searched")
    # the API's in-memory index follows the fetchers' versions and ranks the searches
    amounts = iter(range(5_000, 6_000))
    rt.wait_for(lambda: search(url, region="EU", amount=next(amounts)).json["ranked_by"]
                == "index", timeout_s=10, interval_s=0.1, what="a search ranked by the index")
    calls = json.loads(call(f"{sim.url}/calls").body)
    assert calls["calls"] > 24 and calls["violations"] == 0
    # the fetchers' view over HTTP, and the OpenAPI document
    view = call(f"{url}/regions/US/fetchers")
    assert view.status == 200 and len(view.json["fetchers"]) == 6
    assert all(f["budget_left"] > 0 for f in view.json["fetchers"])
    assert "/offers" in call(f"{url}/openapi.json").json["paths"]
    # ptr inspect: each region host says how its fetchers are, and when the next ones run
    text = inspect.render(inspect.live_tree(rt), {})
    assert "| 6 fetchers: ok 6, retrying 0, outage 0" in text, text
    assert text.count("next run in") == 15 and "budget left" in text
    assert "| index EU: " in text and "offers at version" in text, text


def test_a_killed_region_host_restarts_and_resumes_its_fetchers(make_runtime, chaos,
                                                                  tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, interval_s=30.0)), base="multiproc",
                      name="credit")
    rt.wait_for(lambda: all(f.status == "ok" for f in fetchers(rt, "US").fetchers),
                timeout_s=30, interval_s=0.1, what="US fetched")

    def quiet() -> dict[str, Any] | None:
        """The fetchers, at a moment when none is due within 2 s: a fetch in flight when its
        host dies counts as having spent the minute, which would move its next run."""
        views = fetchers(rt, "US").fetchers
        soonest = min(f.next_run_at for f in views)
        return {f.bank_id: f for f in views} if soonest - time.time() > 2.0 else None
    before = rt.wait_for(quiet, timeout_s=40, interval_s=0.05, what="2 s with no US fetch due")
    old = chaos(rt).kill("/credit/regions/US/fetchers")

    def new_host() -> bool:
        try:
            return chaos(rt).resolve("/credit/regions/US/fetchers").pid not in (0, old.pid)
        except ActorSystemError:  # restarting
            return False
    rt.wait_for(new_host, timeout_s=20, interval_s=0.05, what="a new US host")
    after = {f.bank_id: f for f in fetchers(rt, "US").fetchers}
    assert after.keys() == before.keys()
    for bank_id, was in before.items():
        now = after[bank_id]
        # the schedule, the budget spent and the counts come back from the region's store
        assert now.fetches >= was.fetches >= 1 and now.calls_today >= was.calls_today >= 1
        assert now.next_run_at == was.next_run_at and now.status == "ok"


def test_each_client_is_held_to_its_rate(make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, simulate=False, rate_per_s=0.5, burst=3)),
                      base="multiproc", name="credit")
    url = rt.ask(API, GetEdgeInfo(), 10).url
    statuses = [search(url, region="EU").status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = search(url, region="EU")
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json["refusal"] == "too_many"


def test_ptr_run_credit_simulate_shows_fetchers_and_budgets(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "systems.cli", "run", "credit", "--simulate", "--for", "5",
         "--set", f"data_dir={tmp_path}", "--set", "api_port=0", "--set", "banks=48"],
        capture_output=True, text=True, timeout=90, cwd=ROOT,
        env={**__import__("os").environ, "PTR_RUN_DIR": str(tmp_path / "run")})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "/credit/regions " in out.stdout and "/credit/api " in out.stdout
    assert "EU: 16 fetchers, ok 16" in out.stdout or "EU: 16 fetchers, ok 15" in out.stdout, \
        out.stdout
    assert "budget left" in out.stdout and "next run in" in out.stdout
    assert out.stdout.rstrip().endswith("stopped; 0 actor processes left")
