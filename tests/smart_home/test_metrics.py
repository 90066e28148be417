"""The smart home's own Prometheus families on the observer's ``/metrics``, after a known workload
(readings posted over HTTPS), scraped with the client library's parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from systems.observer import Observer
from systems.smart_home import SYSTEM
from tests.support.smart_home import reading, start_home


def test_readings_accepted_and_stored_show_on_metrics(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    for kind in ("heating", "meteo", "motion"):
        assert home.post("/readings", reading(kind)).status == 200
    home.wait_stored(3)
    assert SYSTEM.metrics is not None
    hook = SYSTEM.metrics
    with Observer(home.rt, system_metrics=lambda rt: hook(rt, home.settings)) as observer:
        observer.service(now=1.0)
        with urllib.request.urlopen(observer.metrics_url, timeout=10) as response:
            text = response.read().decode()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
              if not s.labels}
    assert values["ptr_smart_home_readings_accepted_total"] == 3
    assert values["ptr_smart_home_readings_stored_total"] == 3
    assert values["ptr_smart_home_readings_refused_total"] == 0
    assert values["ptr_smart_home_broker_lag_entries"] == 0
    assert values["ptr_smart_home_storage_up"] == 1
    assert values["ptr_smart_home_alerts_raised_total"] >= 0
    restarts = {s.labels["path"] for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "ptr_actor_restarts_total"}
    assert {"/smart-home/writer", "/smart-home/analyzers/heating"} <= restarts
