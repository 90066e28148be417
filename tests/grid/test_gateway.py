"""One gateway over real HTTPS, without an actor system: every refusal reason answers JSON with its
status and is counted per sensor and gateway; revocation holds on the very next request; mTLS with
the grid's CA; retries acknowledged and stored once; per-sensor order kept."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from actors.grid import fates
from actors.grid.ca import GridCA
from tests.support.grid import GridPlace, log_keys, make_place, post, reading, start_gateway


@pytest.fixture
def place(tmp_path) -> Iterator[GridPlace]:
    place = make_place(tmp_path)
    yield place
    place.engine.dispose()


@pytest.fixture
def gateway(place):
    server = start_gateway(place)
    yield server
    server.stop()
    server.log.close()


def test_each_refusal_reason_answers_json_and_is_counted(place, gateway) -> None:
    ctx, url, token = place.context(), gateway.url, place.tokens["s0"]
    cases = [
        ({"sensor_id": None, "token": token}, 401, "missing_credentials"),
        ({"sensor_id": "s0", "token": None}, 401, "missing_credentials"),
        ({"sensor_id": "nobody", "token": token}, 401, "unknown_sensor"),
        ({"sensor_id": "s0", "token": place.tokens["s1"]}, 401, "wrong_token"),
        ({"sensor_id": "s0", "token": token, "body": reading("s1", 1)}, 403, "sensor_mismatch"),
        ({"sensor_id": "s0", "token": token, "raw": b"{not json"}, 400, "invalid"),
        ({"sensor_id": "s0", "token": token, "body": {"sensor_id": "s0", "seq": 0, "ts": 1}}, 400,
         "invalid"),
    ]
    for kwargs, status, reason in cases:
        body = kwargs.pop("body", reading("s0", 1))
        answer = post(url, body, context=ctx, **kwargs)
        assert (answer.status, answer.body["error"]) == (status, reason), kwargs
        assert answer.body["gateway"] == "gw-t" and answer.body["detail"]
    place.registry.revoke("s2")
    answer = post(url, reading("s2", 1), sensor_id="s2", token=place.tokens["s2"], context=ctx)
    assert (answer.status, answer.body["error"]) == (403, "revoked")
    gateway.flush_fates()
    counted = fates(place.engine)
    assert counted == {"refused_missing_credentials": 2, "refused_unknown_sensor": 1,
                       "refused_wrong_token": 1, "refused_sensor_mismatch": 1,
                       "refused_invalid": 2, "refused_revoked": 1}
    assert fates(place.engine, sensor_id="s0")["refused_invalid"] == 2
    assert fates(place.engine, sensor_id="-") == {"refused_missing_credentials": 1,
                                                  "refused_unknown_sensor": 1}
    assert log_keys(gateway.log) == []  # no unauthenticated byte reached the log


def test_revocation_takes_effect_on_the_next_request(place, gateway) -> None:
    ctx, token = place.context(), place.tokens["s0"]
    assert post(gateway.url, reading("s0", 1), sensor_id="s0", token=token, context=ctx).status == 200
    place.registry.revoke("s0")
    answer = post(gateway.url, reading("s0", 2), sensor_id="s0", token=token, context=ctx)
    assert answer.status == 403 and answer.body["error"] == "revoked"
    assert log_keys(gateway.log) == [("s0", 1)]


def test_tokens_are_stored_hashed(place) -> None:
    with place.engine.connect() as connection:
        dump = json.dumps([list(map(str, row)) for row in
                           connection.exec_driver_sql("SELECT * FROM grid_sensors")])
    assert all(token not in dump for token in place.tokens.values())
    assert "sha256:" in dump


def test_a_retried_reading_is_acknowledged_again_and_stored_once(place, gateway) -> None:
    ctx, token = place.context(), place.tokens["s0"]
    batch = [reading("s0", seq) for seq in (1, 2, 3)]
    first = post(gateway.url, batch, sensor_id="s0", token=token, context=ctx)
    again = post(gateway.url, batch[1:] + [reading("s0", 4)], sensor_id="s0", token=token,
                 context=ctx)
    assert (first.status, first.body["stored"], first.body["duplicates"]) == (200, 3, 0)
    assert (again.status, again.body["acked"], again.body["stored"], again.body["duplicates"]) \
        == (200, 3, 1, 2)
    assert log_keys(gateway.log) == [("s0", 1), ("s0", 2), ("s0", 3), ("s0", 4)]
    gateway.flush_fates()
    assert fates(place.engine, sensor_id="s0", gateway="gw-t") == {"accepted": 4, "duplicate": 2}


def test_per_sensor_order_holds_under_concurrent_senders(place, gateway) -> None:
    ctx = place.context()

    def send(sensor_id: str) -> None:
        for start in range(1, 60, 3):  # batches of three, in order, each after the last's ack
            answer = post(gateway.url, [reading(sensor_id, s) for s in range(start, start + 3)],
                          sensor_id=sensor_id, token=place.tokens[sensor_id], context=ctx)
            assert answer.status == 200

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(send, ["s0", "s1", "s2"]))
    keys = log_keys(gateway.log)
    assert len(keys) == 3 * 60
    for sensor in ("s0", "s1", "s2"):
        seqs = [seq for sid, seq in keys if sid == sensor]
        assert seqs == list(range(1, 61))
    assert gateway.committer.appends < len(keys)  # group commit: requests shared appends


def test_mtls_with_a_certificate_from_the_grid_ca(place, gateway, tmp_path) -> None:
    cert, key, fp = place.ca.issue_sensor("s1", tmp_path / "certs")
    mtls = place.context(cert, key)
    # signed by the CA but not registered for s1 yet
    answer = post(gateway.url, reading("s1", 1), sensor_id="s1", token=None, context=mtls)
    assert (answer.status, answer.body["error"]) == (401, "wrong_certificate")
    place.registry.set_certificate("s1", fp)
    assert post(gateway.url, reading("s1", 1), sensor_id="s1", token=None, context=mtls).status == 200
    # the certificate binds the sensor: another sensor's id is refused with it
    answer = post(gateway.url, reading("s0", 1), sensor_id="s0", token=None, context=mtls)
    assert (answer.status, answer.body["error"]) == (401, "wrong_certificate")
    place.registry.revoke("s1")
    answer = post(gateway.url, reading("s1", 2), sensor_id="s1", token=None, context=mtls)
    assert (answer.status, answer.body["error"]) == (403, "revoked")
    # a certificate from another CA fails the TLS handshake: no HTTP answer at all
    stranger = GridCA(tmp_path / "other-ca")
    scert, skey, _ = stranger.issue_sensor("s1", tmp_path / "stranger")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        post(gateway.url, reading("s1", 3), sensor_id="s1", token=None,
             context=place.context(scert, skey))
    assert log_keys(gateway.log) == [("s1", 1)]


def test_a_gateway_on_the_jetstream_log_stores_each_reading_once(place) -> None:
    from actors.grid import open_log
    from tests.support.services import NATS, require_service
    require_service(*NATS)
    prefix = f"PTR_GRID_T{uuid.uuid4().hex[:8].upper()}"
    log = open_log(f"nats://127.0.0.1:4222/{prefix}")
    server = start_gateway(place, log=log)
    try:
        ctx, token = place.context(), place.tokens["s0"]
        batch = [reading("s0", seq) for seq in (1, 2, 3)]
        assert post(server.url, batch, sensor_id="s0", token=token, context=ctx).body["stored"] == 3
        again = post(server.url, batch + [reading("s0", 4)], sensor_id="s0", token=token,
                     context=ctx)
        assert (again.status, again.body["stored"], again.body["duplicates"]) == (200, 1, 3)
        assert log_keys(log) == [("s0", 1), ("s0", 2), ("s0", 3), ("s0", 4)]
    finally:
        server.stop()
        log._run("cleanup", log._js.delete_stream(log.stream_name("grid_readings")))
        log._run("cleanup", log._js.delete_key_value(log.offsets_bucket))
        log.close()
