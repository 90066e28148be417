"""The dashboard as a household opens it in a browser (headless Chromium): every room with its
sensors' latest values, units and ages; a chart drawn from the JSON API with points, title, unit
and the alert limits; the 1 h / 24 h / 7 d ranges; the mode switch changing the mode in the API.
Real processes (multiprocTCPBase): the browser talks to the edges while the tree runs."""

from __future__ import annotations

import time

from tests.support.browser import browser_page  # noqa: F401 - the fixture
from tests.support.clients import call
from tests.support.smart_home import reading, small_house, start_home


def test_the_dashboard_shows_rooms_values_a_chart_and_switches_the_mode(
        browser_page, make_runtime, tmp_path) -> None:  # noqa: F811
    # browser_page first: Playwright's driver must outlive the actor system's teardown, which
    # reaps child processes (the other order hangs in the driver's exit)
    home = start_home(make_runtime, tmp_path, base="multiproc")
    now = time.time()
    batch = [reading(s.kind, sensor_id=s.sensor_id, ts=now - 1200 + 60 * i,
                     **({"temperature": 18.0 + i % 5} if s.kind == "heating" else {}))
             for s in small_house().sensors for i in range(20)]
    batch.append(reading("electricity", power=5000.0, ts=now))  # over the 3,680 W limit
    assert call(home.ingest_url + "/readings/batch", batch, context=home.context).status == 200
    home.wait_stored(len(batch))
    page = browser_page
    page.goto(home.api_url + "/")
    page.wait_for_selector(".room .sensor .value", timeout=15_000)
    rooms = page.eval_on_selector_all(".room", "els => els.map(e => e.dataset.room)")
    assert sorted(rooms) == ["kitchen", "living", "outside"]
    heating = page.inner_text(".sensor[data-sensor='heating-living']")
    assert "temperature 22.0 °C" in heating and "s ago" in heating   # value, unit, age
    page.wait_for_selector(".open-alert[data-rule='power_over_limit']", timeout=15_000)
    assert "5,000 W is over the circuit limit of 3,680 W" in page.inner_text("#open-alerts")

    page.click(".sensor[data-sensor='heating-living'] .value[data-metric='temperature']")
    page.wait_for_selector("#chart svg[data-points]", timeout=10_000)
    points = int(page.get_attribute("#chart svg", "data-points") or 0)
    assert points >= 10                                     # 20 readings in ~10 s buckets
    assert page.locator("#chart .limit").count() == 2       # the indoor range, 12 and 28 °C
    assert "heating-living (living): temperature (°C), last hour" in page.inner_text(
        "#chart-title")
    page.click(".range[data-hours='168']")
    page.wait_for_function("document.getElementById('chart-title').textContent"
                           ".includes('last 7 days')", timeout=10_000)
    assert int(page.get_attribute("#chart svg", "data-points") or 0) >= 1
    page.click(".room[data-room='outside'] .room-title")       # the room's chart
    page.wait_for_function("document.getElementById('chart-title').textContent"
                           ".startsWith('room outside: temperature')", timeout=10_000)
    assert page.locator("#chart .limit").count() == 2       # the outdoor range

    page.wait_for_function("document.getElementById('mode').textContent === 'home'",
                           timeout=10_000)
    page.click("#mode-switch")
    page.wait_for_function("document.getElementById('mode').textContent === 'away'",
                           timeout=10_000)
    home.rt.wait_for(lambda: call(home.api_url + "/mode", context=home.context).json
                     == {"mode": "away"}, 15, what="the API's mode")
    assert home.stored("smart_home_modes") == 1
