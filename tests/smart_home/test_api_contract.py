"""The smart home's HTTPS query API keeps its OpenAPI contract: schemathesis sends generated requests
to the real server over real TLS, with readings and alerts stored; no answer is a 5xx and every
answer matches the document (JSON bodies against their models, the chart as ``image/png``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from actors.edges.tls import CERT_FILE
from actors.smart_home.api import AlertList, SensorList, SensorReadings, SensorSeries
from protocols.smart_home import RoomStats
from tests.support.clients import meanwhile
from tests.support.contract import check_contract, openapi_of
from tests.support.smart_home import reading, small_house, start_home

ROUTES = ["GET /", "GET /alerts", "GET /alerts/open", "GET /dashboard.css", "GET /dashboard.js", "GET /health",
          "GET /mode", "GET /rooms", "GET /rooms/{room}/stats", "GET /sensors",
          "GET /sensors/{sensor_id}/chart.png", "GET /sensors/{sensor_id}/readings",
          "GET /sensors/{sensor_id}/series", "POST /mode"]


def test_the_query_api_documents_every_route_and_keeps_its_contract(make_runtime: Any,
                                                                     tmp_path: Path) -> None:
    home = start_home(make_runtime, tmp_path, house=small_house(silent_after_s=1.0))
    ca = str(tmp_path / "tls" / CERT_FILE)
    try:
        now = time.time()
        home.post("/mode", {"mode": "away"})
        assert home.post("/readings/batch", [
            reading("heating", ts=now - 60, temperature=35.0), reading("motion", motion=True),
            reading("electricity", power=4000.0), reading("meteo")]).status == 200
        home.wait_stored(3, "smart_home_alerts")
        document = meanwhile(home.rt, lambda: openapi_of(home.api_url, ca))
        assert document["openapi"] == "3.1.0"
        operations = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                            for method in item)
        assert operations == ROUTES
        readings = document["paths"]["/sensors/{sensor_id}/readings"]["get"]
        assert {p["name"] for p in readings["parameters"]} == {"sensor_id", "since", "until",
                                                               "limit"}
        assert {"200", "400", "403", "404", "503", "504"} <= set(readings["responses"])
        chart = document["paths"]["/sensors/{sensor_id}/chart.png"]["get"]["responses"]["200"]
        assert list(chart["content"]) == ["image/png"]
        exercised = meanwhile(home.rt, lambda: check_contract(home.api_url, verify=ca),
                              timeout_s=180)
        assert sorted(exercised) == ROUTES
        # generated sensor and room names are unknown (404): the known ones' answers match too
        SensorReadings.model_validate(home.get("/sensors/heating-living/readings").json)
        RoomStats.model_validate(home.get("/rooms/living/stats").json)
        alerts = AlertList.model_validate(home.get("/alerts").json)
        assert alerts.count >= 3
        assert SensorList.model_validate(home.get("/sensors").json).sensors[0].latest is not None
        series = SensorSeries.model_validate(home.get(
            "/sensors/heating-living/series?metric=temperature&hours=1").json)
        assert series.points and series.limits == [12.0, 28.0] and series.unit == "°C"
        open_now = home.get("/alerts/open").json["alerts"]
        # (the motion alert was re-armed by the mode changes schemathesis posted)
        assert {a["rule"] for a in open_now} >= {"temperature_out_of_range", "power_over_limit"}
    finally:
        home.close()
