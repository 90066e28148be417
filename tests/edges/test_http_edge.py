"""The supervised HTTP edge as a client sees it: answers after the commit, every refusal with its
status and reason, back-pressure as 503, TLS, an allowlist, and a restart on the same port."""

from __future__ import annotations

import os
import signal
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from actors.storage.batcher import READINGS_TABLE, Batcher
from actors.edges import Answer, Route, client_context, ensure_self_signed
from actors.edges.tls import CERT_FILE, KEY_FILE
from actors.edges.http_edge import HttpEdgeActor
from actors.storage import make_engine
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.storage import FlushNow, GetBatcherStats, SensorReading
from protocols.supervision import ChildInfo, ExitKind
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime, free_port
from tests.support.clients import Background, call, meanwhile

ROUTES = [
    Route("POST", "/readings", list[SensorReading], Answer.REPLY, timeout_s=5),
    Route("POST", "/readings/accepted", list[SensorReading], name="accepted"),
]


def tree(tmp_path: Path, *, edge: dict[str, Any] | None = None,
         batcher: dict[str, Any] | None = None) -> SupervisorSpec:
    return SupervisorSpec(intensity=10, children=[
        ChildSpec("batcher", Batcher, {"storage_url": db_url(tmp_path), "table": READINGS_TABLE,
                                       **(batcher or {})}, name="batcher"),
        ChildSpec("http", HttpEdgeActor, {"routes": ROUTES, "target": "batcher", **(edge or {})},
                  name="http-edge"),
    ])


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


def stored_ids(tmp_path: Path) -> list[str]:
    engine = make_engine(db_url(tmp_path))
    try:
        with engine.connect() as connection:
            return sorted(r[0] for r in connection.execute(sa.text("SELECT message_id FROM readings")))
    finally:
        engine.dispose()


def readings(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"message_id": f"{prefix}-{n}", "sensor": "s1", "value": n} for n in range(count)]


def edge_of(rt: ActorRuntime) -> EdgeInfo:
    return rt.ask("http-edge", GetEdgeInfo())


def child(rt: ActorRuntime, child_id: str) -> ChildInfo:
    return next(c for c in rt.which_children().children if c.child_id == child_id)


# --- request/reply through the tree ------------------------------------------------------------

def test_a_post_is_answered_200_only_after_its_records_are_committed(make_runtime, tmp_path,
                                                                     base) -> None:
    rt = make_runtime(tree(tmp_path), base=base)
    url = edge_of(rt).url + "/readings"
    answer = meanwhile(rt, lambda: call(url, readings("a", 50)))
    assert (answer.status, answer.json) == (200, {"records": 50})
    assert stored_ids(tmp_path) == sorted(r["message_id"] for r in readings("a", 50))
    again = meanwhile(rt, lambda: call(url, readings("a", 50)))  # a client's retry
    assert again.status == 200 and len(stored_ids(tmp_path)) == 50


def test_an_accepted_route_answers_202_at_once_and_its_records_follow(make_runtime,
                                                                      tmp_path) -> None:
    rt = make_runtime(tree(tmp_path), base="simple")
    answer = call(edge_of(rt).url + "/readings/accepted", readings("b", 20))
    assert (answer.status, answer.json) == (202, {"accepted": 20})
    rt.wait_for(lambda: len(stored_ids(tmp_path)) == 20, what="accepted records stored")


# --- refusals ----------------------------------------------------------------------------------

def test_a_bad_field_is_a_400_naming_it_and_nothing_reaches_the_batcher(make_runtime,
                                                                        tmp_path) -> None:
    rt = make_runtime(tree(tmp_path), base="simple")
    body = readings("c", 3)
    body[1]["value"] = "warm"
    answer = call(edge_of(rt).url + "/readings", body)
    assert answer.status == 400
    assert [f["field"] for f in answer.json["fields"]] == ["1.value"]
    assert call(edge_of(rt).url + "/health").json["in_flight"] == 0  # the bridge never took it
    assert rt.ask("batcher", GetBatcherStats()).waiting_senders == 0
    assert stored_ids(tmp_path) == []


def test_a_body_over_the_limit_is_a_413(make_runtime, tmp_path) -> None:
    rt = make_runtime(tree(tmp_path, edge={"max_body_bytes": 1000}), base="simple")
    answer = call(edge_of(rt).url + "/readings", readings("d", 100))
    assert answer.status == 413 and answer.json["max_bytes"] == 1000


def test_a_client_outside_the_allowlist_gets_a_403(make_runtime, tmp_path) -> None:
    rt = make_runtime(tree(tmp_path, edge={"allow": ["10.0.0.0/8"]}), base="simple")
    edge = edge_of(rt)
    for answer in (call(edge.url + "/readings", readings("e", 1)), call(edge.url + "/health")):
        assert answer.status == 403 and answer.json["client"] == "127.0.0.1"
    assert stored_ids(tmp_path) == []


def test_a_saturated_tree_answers_503_with_retry_after_then_serves_the_waiting(make_runtime,
                                                                               tmp_path) -> None:
    rt = make_runtime(tree(tmp_path, edge={"max_in_flight": 2, "retry_after_s": 3},
                           batcher={"max_age_s": 60}), base="simple")
    edge = edge_of(rt)
    waiting = [Background(lambda n=n: call(edge.url + "/readings", readings(f"w{n}", 1)))
               for n in range(2)]
    rt.wait_for(lambda: call(edge.url + "/health").json["in_flight"] == 2,
                what="two requests waiting for their commit")
    refused = call(edge.url + "/readings", readings("late", 1))
    assert refused.status == 503 and refused.headers["Retry-After"] == "3"
    rt.tell("batcher", FlushNow())
    assert [w.result(rt).status for w in waiting] == [200, 200]
    assert stored_ids(tmp_path) == ["w0-0", "w1-0"]


def test_requests_arriving_within_the_linger_time_leave_as_one_batch(make_runtime, tmp_path,
                                                                     base) -> None:
    rt = make_runtime(tree(tmp_path, edge={"linger_s": 1.0}), base=base)
    edge = edge_of(rt)
    for n in range(5):
        assert call(edge.url + "/readings/accepted", readings(f"l{n}", 2)).status == 202
    rt.wait_for(lambda: edge_of(rt).items_sent == 5, what="the lingering batch leaving")
    assert edge_of(rt).batches_sent == 1
    lone = meanwhile(rt, lambda: call(edge.url + "/readings", readings("lone", 1)))
    assert lone.status == 200  # a lone request is not stranded: it leaves when its wait is over
    assert (edge_of(rt).batches_sent, edge_of(rt).items_sent) == (2, 6)


def test_a_storage_failure_is_a_503_and_the_edge_outlives_the_batchers_crash(make_runtime,
                                                                            tmp_path) -> None:
    rt = make_runtime(tree(tmp_path), base="simple")
    url = edge_of(rt).url + "/readings"
    assert meanwhile(rt, lambda: call(url, readings("ok", 1))).status == 200
    engine = make_engine(db_url(tmp_path))
    with engine.begin() as connection:  # the database loses the table under the Batcher
        connection.execute(sa.text("DROP TABLE readings"))
    engine.dispose()
    failed = meanwhile(rt, lambda: call(url, readings("lost", 2)))
    assert failed.status == 503 and failed.headers["Retry-After"] == "1"
    rt.wait_for(lambda: child(rt, "batcher").restarts == 1, what="batcher restarted")
    retried = meanwhile(rt, lambda: call(url, readings("lost", 2)))  # the client's retry
    assert retried.status == 200 and stored_ids(tmp_path) == ["lost-0", "lost-1"]
    assert child(rt, "http").restarts == 0


# --- health, metrics, TLS ----------------------------------------------------------------------

def test_health_and_metrics_describe_the_edge(make_runtime, tmp_path) -> None:
    rt = make_runtime(tree(tmp_path, edge={"max_in_flight": 8}), base="simple")
    edge = edge_of(rt)
    health = call(edge.url + "/health")
    assert (health.status, health.json) == (200, {"status": "ok", "in_flight": 0,
                                                  "max_in_flight": 8})
    assert meanwhile(rt, lambda: call(edge.url + "/readings", readings("m", 4))).status == 200
    metrics = {s.name: s for family in text_string_to_metric_families(
        call(edge.url + "/metrics").body.decode()) for s in family.samples
        if s.labels.get("route", "/readings") == "/readings" and s.labels.get("status", "200") == "200"}
    assert metrics["ptr_edge_http_requests_total"].value == 1
    assert metrics["ptr_edge_http_records_accepted_total"].value == 4


def test_https_uses_a_self_signed_certificate_made_on_first_run(make_runtime, tmp_path) -> None:
    tls_dir = tmp_path / "tls"
    rt = make_runtime(tree(tmp_path, edge={"tls_dir": str(tls_dir)}), base="simple")
    edge = edge_of(rt)
    assert edge.scheme == "https" and (tls_dir / CERT_FILE).exists() and (tls_dir / KEY_FILE).exists()
    context = client_context(tls_dir)
    answer = meanwhile(rt, lambda: call(edge.url + "/readings", readings("t", 2), context=context))
    assert answer.status == 200 and stored_ids(tmp_path) == ["t-0", "t-1"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        call(edge.url + "/health", context=ssl.create_default_context())


def test_https_serves_a_given_certificate_and_key(make_runtime, tmp_path) -> None:
    cert, key = ensure_self_signed(tmp_path / "issued")  # stands in for a pair from a CA
    rt = make_runtime(tree(tmp_path, edge={"tls_cert": str(cert), "tls_key": str(key)}),
                      base="simple")
    edge = edge_of(rt)
    answer = call(edge.url + "/health", context=client_context(cert))
    assert edge.scheme == "https" and answer.status == 200


# --- supervision -------------------------------------------------------------------------------

@pytest.mark.multiproc
def test_the_edge_restarts_like_any_child_and_serves_its_port_again(make_runtime,
                                                                    tmp_path) -> None:
    port = free_port()
    rt = make_runtime(tree(tmp_path, edge={"port": port}), base="multiproc")
    first = edge_of(rt)
    assert first.port == port
    victim = child(rt, "http")
    os.kill(victim.pid, signal.SIGKILL)
    replacement = rt.wait_for(lambda: (c := child(rt, "http")).status == "running" and
                              c.pid != victim.pid and c, what="edge restarted")
    assert replacement.last_exit.exit_kind is ExitKind.KILLED
    second = edge_of(rt)
    assert (second.port, second.incarnation) == (port, first.incarnation + 1)
    assert call(second.url + "/readings", readings("r", 3)).status == 200
    assert stored_ids(tmp_path) == ["r-0", "r-1", "r-2"]
