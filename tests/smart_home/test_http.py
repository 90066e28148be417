"""The smart home over real HTTPS, as a sensor and a dashboard see it: each kind of reading from the
POST to the database and back out of the query API; every kind of bad input refused with its status
and a JSON reason; alerts, statistics and the chart.

simpleSystemBase: the whole tree in this process, with its edges on real sockets and TLS."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import pytest

from protocols.smart_home import KINDS, METRICS, GetIngestStats
from tests.support.clients import call
from tests.support.smart_home import SENSOR_OF, reading, start_home

ROOM_OF = {"heating": "living", "meteo": "outside", "motion": "living",
           "electricity": "kitchen"}


# --- each kind, end to end ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_reading_of_each_kind_is_stored_and_read_back_in_its_shape(make_runtime, tmp_path,
                                                                     kind: str) -> None:
    home = start_home(make_runtime, tmp_path)
    sent = reading(kind)
    answer = home.post("/readings", sent)
    assert (answer.status, answer.json) == (200, {"records": 1})  # broker mode: persisted first
    home.wait_stored(1)
    back = home.get(f"/sensors/{sent['sensor_id']}/readings")
    assert back.status == 200 and back.json["kind"] == kind and back.json["count"] == 1
    stored = back.json["readings"][0]
    assert {k: stored[k] for k in sent} == sent                 # same shape, same values
    assert stored["ts"] <= stored["received_at"] <= stored["stored_at"]
    assert home.check(kind).readings == 1                       # the analyzer has it too
    stats = home.get(f"/rooms/{ROOM_OF[kind]}/stats").json
    mine = next(s for s in stats["sensors"] if s["sensor_id"] == sent["sensor_id"])
    metric = METRICS[kind][0]
    value = float(sent[metric])
    assert mine["windows"]["minute"][metric] == {"count": 1, "min": value, "max": value,
                                                 "mean": value}


def test_a_batch_of_every_kind_is_one_answer_and_a_retry_is_counted_once(make_runtime,
                                                                          tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    batch = [reading(kind) for kind in KINDS for _ in range(5)]
    assert home.post("/readings/batch", batch).json == {"records": 20}
    assert home.post("/readings/batch", batch).json == {"records": 20}  # the client retried
    home.wait_stored(20)
    assert home.rt.ask("sh-ingest", GetIngestStats(), 5).duplicates == 20
    assert [home.check(kind).readings for kind in KINDS] == [5, 5, 5, 5]
    assert home.stored() == 20


def test_two_sensors_may_use_the_same_message_id(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    home.post("/readings", reading("heating", message_id="boot1-1"))
    home.post("/readings", reading("motion", message_id="boot1-1"))
    home.wait_stored(2)


def test_direct_mode_answers_202_at_once_and_still_stores_and_analyzes(make_runtime,
                                                                       tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, mode="direct")
    answer = home.post("/readings/batch", [reading("electricity", power=5000.0)])
    assert (answer.status, answer.json) == (202, {"accepted": 1})
    home.wait_stored(1)
    home.wait_stored(1, "smart_home_alerts")
    assert [a["rule"] for a in home.alerts()] == ["power_over_limit"]


# --- bad input ----------------------------------------------------------------------------------

def _without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


@pytest.mark.parametrize("case, path, body, field, error", [
    ("wrong type", "/readings", reading("heating", temperature="warm"), "heating.temperature",
     "valid number"),
    ("missing field", "/readings", _without(reading("electricity"), "energy"),
     "electricity.energy", "Field required"),
    ("unknown sensor", "/readings", reading("heating", sensor_id="heating-attic"), "sensor_id",
     "unknown sensor 'heating-attic'"),
    ("wrong kind for the sensor", "/readings", reading("heating", sensor_id="motion-living"),
     "kind", "is a motion sensor"),
    ("time in the future", "/readings", reading("motion", ts=time.time() + 3600), "ts",
     "in the future"),
    ("one bad reading in a batch", "/readings/batch",
     [reading("motion"), reading("motion", sensor_id="ghost")], "1.sensor_id", "unknown sensor"),
    ("not JSON at all", "/readings", b"{temperature: 21}", "(body)", "Invalid JSON"),
])
def test_a_bad_reading_is_refused_400_naming_the_field_and_nothing_is_stored(
        make_runtime, tmp_path, case: str, path: str, body: Any, field: str, error: str) -> None:
    home = start_home(make_runtime, tmp_path)
    answer = home.post(path, body)
    assert answer.status == 400, (case, answer)
    fields = answer.json["fields"]
    assert fields[0]["field"] == field and error in fields[0]["error"], (case, answer)
    assert home.post("/readings", reading("heating")).status == 200  # the edge lives on
    home.wait_stored(1)
    assert home.stored() == 1


def test_a_client_outside_the_local_network_is_refused_403_by_both_edges(make_runtime,
                                                                         tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, allow=["10.0.0.0/8", "192.168.0.0/16"])
    for answer in (home.post("/readings", reading("heating")), home.get("/sensors")):
        assert (answer.status, answer.json["error"]) == (403, "client address not allowed")
        assert answer.json["client"] == "127.0.0.1"
    assert home.stored() == 0


def test_the_default_allowlist_is_the_local_network() -> None:
    import ipaddress

    from actors.smart_home.api import LOCAL_NETWORKS
    nets = [ipaddress.ip_network(n) for n in LOCAL_NETWORKS]

    def allowed(address: str) -> bool:
        return any(ipaddress.ip_address(address) in n for n in nets)

    assert all(allowed(a) for a in ("127.0.0.1", "192.168.1.20", "10.1.2.3", "172.16.5.4",
                                     "fd12::1", "fe80::1", "::1"))
    assert not any(allowed(a) for a in ("8.8.8.8", "172.32.0.1", "100.64.0.1", "2001:db8::1"))


def test_an_oversized_body_is_413_and_plain_http_is_refused_by_the_tls_edge(make_runtime,
                                                                            tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    answer = home.post("/readings/batch", b"[" + b" " * (5 << 20) + b"]")
    assert answer.status == 413 and answer.json["max_bytes"] == 4 << 20
    with pytest.raises(OSError):
        call(home.ingest_url.replace("https://", "http://") + "/readings", reading("heating"),
             timeout_s=5)


# --- alerts through the whole system ------------------------------------------------------------

def test_each_alert_rule_fires_through_the_system_and_shows_in_get_alerts(make_runtime,
                                                                          tmp_path) -> None:
    from tests.support.smart_home import small_house
    home = start_home(make_runtime, tmp_path, house=small_house(silent_after_s=1.0))
    quiet = [reading("heating"), reading("motion"), reading("electricity"), reading("meteo")]
    assert home.post("/readings/batch", quiet).status == 200
    for kind in KINDS:
        home.check(kind)
    assert home.alerts() == []                                    # normal readings: nothing
    home.post("/mode", {"mode": "away"})
    home.post("/readings/batch", [reading("heating", temperature=35.0),
                                  reading("motion", motion=True),
                                  reading("electricity", power=4000.0)])
    home.rt.wait_for(lambda: home.check("electricity").readings == 2, what="analyzed")
    home.rt.wait_for(lambda: home.check("meteo").alerts == 1, timeout_s=10, what="meteo silent")
    home.wait_stored(4, "smart_home_alerts")
    answer = home.get("/alerts").json
    fired = {(a["rule"], a["sensor_id"]) for a in answer["alerts"]}
    assert {("temperature_out_of_range", "heating-living"), ("motion_while_away", "motion-living"),
            ("power_over_limit", "circuit-kitchen"), ("sensor_silent", "meteo-garden")} <= fired
    silent = home.get("/alerts?rule=sensor_silent&sensor_id=meteo-garden").json["alerts"]
    assert [a["rule"] for a in silent] == ["sensor_silent"]


# --- the query API --------------------------------------------------------------------------------

def test_sensors_lists_the_house_with_each_latest_reading(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    home.post("/readings/batch", [reading("heating", ts=time.time() - 10, temperature=19.0),
                                  reading("heating", temperature=20.0)])
    home.wait_stored(2)
    sensors = {s["sensor_id"]: s for s in home.get("/sensors").json["sensors"]}
    assert set(sensors) == set(SENSOR_OF.values())
    assert sensors["heating-living"]["latest"]["temperature"] == 20.0
    assert sensors["circuit-kitchen"]["power_limit"] == 3680.0 and \
        sensors["circuit-kitchen"]["latest"] is None
    rooms = {r["room"] for r in home.get("/rooms").json["rooms"]}
    assert rooms == {"living", "kitchen", "outside"}


def test_readings_honour_since_and_until_and_refuse_bad_ones(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    now = time.time()
    home.post("/readings/batch", [reading("motion", ts=now - 300 + n * 60) for n in range(5)])
    home.wait_stored(5)
    base = "/sensors/motion-living/readings"
    assert home.get(base).json["count"] == 5
    window = home.get(f"{base}?since={now - 250}&until={now - 100}").json
    assert [round(r["ts"] - now) for r in window["readings"]] == [-240, -180, -120]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 130)) + "Z"
    assert home.get(f"{base}?since={iso}").json["count"] == 2
    assert home.get(f"{base}?limit=2").json["truncated"] is True
    for query, field in (("since=yesterday", "since"), (f"since={now}&until={now - 1}", "since"),
                         ("limit=0", "limit")):
        answer = home.get(f"{base}?{query}")
        assert answer.status == 400 and answer.json["fields"][0]["field"] == field
    assert home.get("/sensors/heating-attic/readings").status == 404
    assert home.get("/sensors/heating-attic/readings").json["refusal"] == "not_found"
    assert home.get("/rooms/attic/stats").json == {
        "type": "about:blank", "title": "Not Found", "status": 404, "detail": "unknown room",
        "error": "unknown room", "refusal": "not_found", "room": "attic",
        "rooms": ["kitchen", "living", "outside"]}


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    data, pos = b"", 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(data)
    stride = width * 3 + 1
    assert all(raw[y * stride] == 0 for y in range(height))  # no filters: rows as drawn
    return width, height, b"".join(raw[y * stride + 1:(y + 1) * stride] for y in range(height))


def test_the_chart_is_a_png_of_the_last_24_hours_with_the_values_where_they_belong(
        make_runtime, tmp_path) -> None:
    from actors.smart_home.chart import LINE
    home = start_home(make_runtime, tmp_path)
    now = time.time()
    rising = [reading("heating", ts=now - 20 * 3600 + n * 3600, temperature=14.0 + n)
              for n in range(20)]  # 14 °C twenty hours ago up to 33 °C an hour ago
    home.post("/readings/batch", rising)
    home.wait_stored(20)
    answer = home.get("/sensors/heating-living/chart.png")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/png"
    width, height, pixels = _png_pixels(answer.body)
    assert (width, height) == (960, 320)
    line = bytes(LINE)
    columns: dict[int, list[int]] = {}
    for y in range(height):
        for x in range(width):
            if pixels[(y * width + x) * 3:(y * width + x) * 3 + 3] == line:
                columns.setdefault(x, []).append(y)
    assert len(columns) >= 19                                  # one mark per reading at least
    left, right = min(columns), max(columns)
    assert right - left > width / 2                            # spread over the day
    assert min(columns[right]) < min(columns[left])            # warmer later: drawn higher
    assert home.get("/sensors/heating-living/chart.png?metric=power").status == 400
