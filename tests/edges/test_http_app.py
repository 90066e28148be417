"""The HTTP edge as a client sees it: every answer JSON, every refusal with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import stat
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from actors.edges import (
    Answer,
    EdgeBridge,
    HttpServer,
    Inbound,
    LoopThread,
    Pending,
    Route,
    build_app,
    client_context,
    ensure_self_signed,
    self_signed_context,
)
from protocols.errors import ConfigError, InvalidMessageError, SpecError
from protocols.message import Message
from tests.support.bridge_actor import ActorThread


class Reading(Message):
    sensor: str
    value: float


class Echo(Message):
    text: str


class Opaque:
    """Not something pydantic can validate."""


class Shout(Message):
    text: str
    peer: str


ROUTES = [
    Route("POST", "/readings", Reading),
    Route("POST", "/readings/batch", list[Reading], name="readings-batch"),
    Route("POST", "/echo", Echo, Answer.REPLY, timeout_s=10),
    Route("POST", "/echo/hasty", Echo, Answer.REPLY, timeout_s=0.05),
]
MAX_BODY = 1024


def echo_actor(pending: Pending[Inbound]) -> None:
    """Shouts the text back; fails the way the test asks through the text itself."""
    text = pending.item.body.text
    if text == "boom":
        pending.fail(RuntimeError("the actor crashed"))
    elif text == "judge":
        pending.fail(InvalidMessageError("text is not allowed", kind="Echo",
                                         errors=[{"field": "text", "error": "forbidden word"}]))
    elif text == "ignore":
        pass  # never answers
    else:
        pending.resolve(Shout(text=text.upper(), peer=pending.item.peer))


@pytest.fixture
def bridge() -> Iterator[EdgeBridge[Inbound]]:
    bridge: EdgeBridge[Inbound] = EdgeBridge(max_in_flight=8)
    yield bridge
    bridge.close()


async def serve(app: Any) -> TestClient:
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(bridge: EdgeBridge[Inbound]) -> AsyncIterator[TestClient]:
    app = build_app(ROUTES, bridge=bridge, max_body_bytes=MAX_BODY, allow_networks=["127.0.0.0/8"])
    client = await serve(app)
    yield client
    await client.close()


async def answer(response: aiohttp.ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# --- accepted routes ----------------------------------------------------------------------------

async def test_valid_record_is_accepted_and_handed_to_the_actor(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    body = await answer(await client.post("/readings", json={"sensor": "s1", "value": 21.5}), 202)
    assert body == {"accepted": 1}
    [pending] = bridge.drain()
    assert pending.item == Inbound("/readings", Reading(sensor="s1", value=21.5), "127.0.0.1")


async def test_batch_is_accepted_as_one_item_with_its_record_count(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    batch = [{"sensor": f"s{i}", "value": i} for i in range(3)]
    assert await answer(await client.post("/readings/batch", json=batch), 202) == {"accepted": 3}
    [pending] = bridge.drain()
    assert pending.item.route == "readings-batch"
    assert pending.item.body == [Reading(sensor=f"s{i}", value=i) for i in range(3)]


async def test_empty_batch_is_accepted_without_bothering_the_actor(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    assert await answer(await client.post("/readings/batch", json=[]), 202) == {"accepted": 0}
    assert bridge.queued == 0


# --- 400 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/readings", {"sensor": "s1", "value": "warm"}, "value"),
    ("/readings", {"sensor": "s1"}, "value"),
    ("/readings", {"sensor": "s1", "value": 1, "unit": "C"}, "unit"),
    ("/readings/batch", [{"sensor": "a", "value": 1}, {"sensor": "b", "value": "x"}], "1.value"),
    ("/readings/batch", [{"value": 1}], "0.sensor"),
])
async def test_invalid_body_is_400_naming_the_field(
        client: TestClient, bridge: EdgeBridge[Inbound], path: str, payload: Any,
        field: str) -> None:
    body = await answer(await client.post(path, json=payload), 400)
    assert body["error"].startswith("invalid Reading")
    assert [f["field"] for f in body["fields"]] == [field]
    assert body["fields"][0]["error"]
    assert bridge.queued == 0


async def test_missing_field_says_it_is_required(client: TestClient) -> None:
    body = await answer(await client.post("/readings", json={"value": 3}), 400)
    assert body["fields"] == [{"field": "sensor", "error": "Field required"}]


async def test_body_that_is_not_json_is_400(client: TestClient) -> None:
    body = await answer(await client.post("/readings", data=b"{not json"), 400)
    assert body["fields"][0]["field"] == "(body)"


# --- 413, 403, 404, 405, 503 ------------------------------------------------------------------

async def test_body_over_the_limit_is_413(client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    batch = [{"sensor": "s" * 50, "value": i} for i in range(30)]
    assert len(json.dumps(batch)) > MAX_BODY
    body = await answer(await client.post("/readings/batch", json=batch), 413)
    assert body["error"] and body["max_bytes"] == MAX_BODY
    assert bridge.queued == 0


async def test_chunked_body_over_the_limit_is_413_too(client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to check up front
        yield b"["
        for i in range(100):
            yield json.dumps({"sensor": "s", "value": i}).encode() + b","
        yield b"{}]"

    body = await answer(await client.post("/readings/batch", data=chunks()), 413)
    assert body["max_bytes"] == MAX_BODY


async def test_client_outside_the_allowlist_is_403(bridge: EdgeBridge[Inbound]) -> None:
    app = build_app(ROUTES, bridge=bridge, max_body_bytes=MAX_BODY,
                    allow_networks=["10.0.0.0/8", "192.168.0.0/16", "::1/128"])
    client = await serve(app)
    try:
        for response in (await client.post("/readings", json={"sensor": "s", "value": 1}),
                         await client.get("/health"), await client.get("/nowhere")):
            body = await answer(response, 403)
            assert body["error"] == "client address not allowed"
            assert body["client"] == "127.0.0.1"
    finally:
        await client.close()
    assert bridge.queued == 0


async def test_unknown_route_is_404_json(client: TestClient) -> None:
    body = await answer(await client.get("/nowhere"), 404)
    assert body == {"type": "about:blank", "title": "Not Found", "status": 404,
                    "detail": "Not Found", "error": "Not Found", "path": "/nowhere",
                    "refusal": "not_found"}


@pytest.mark.parametrize("request_args, status, title", [
    (("post", "/readings", {"json": {"value": 3}}), 400, "Bad Request"),
    (("post", "/readings", {"data": b"x" * (MAX_BODY + 1)}), 413, "Request Entity Too Large"),
    (("get", "/readings", {}), 405, "Method Not Allowed"),
])
async def test_every_error_is_problem_details_beside_ptrs_own_members(
        client: TestClient, request_args: tuple, status: int, title: str) -> None:
    """RFC 9457: ``type``, ``title``, ``status`` and ``detail``, with ptr's ``error`` (the same
    text as ``detail``) and ``refusal``; a client of either vocabulary reads the answer."""
    method, path, kwargs = request_args
    body = await answer(await getattr(client, method)(path, **kwargs), status)
    assert (body["type"], body["title"], body["status"]) == ("about:blank", title, status)
    assert body["detail"] == body["error"] and body["detail"]


async def test_wrong_method_is_405_json_with_allow(client: TestClient) -> None:
    response = await client.get("/readings")
    body = await answer(response, 405)
    assert body["allowed"] == ["POST"] and response.headers["Allow"] == "POST"


async def test_saturated_bridge_is_503_with_retry_after(client: TestClient,
                                                        bridge: EdgeBridge[Inbound]) -> None:
    for i in range(bridge.limit):
        await answer(await client.post("/readings", json={"sensor": "s", "value": i}), 202)
    response = await client.post("/readings", json={"sensor": "s", "value": 99})
    body = await answer(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert body["limit"] == bridge.limit
    bridge.drain()  # the actor catches up: accepted again
    await answer(await client.post("/readings", json={"sensor": "s", "value": 100}), 202)


# --- request/reply through the bridge -------------------------------------------------------------

async def test_reply_route_answers_with_what_the_actor_thread_resolved(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    with ActorThread(bridge, echo_actor):
        responses = await asyncio.gather(*(client.post("/echo", json={"text": f"hi {i}"})
                                           for i in range(8)))
        bodies = [await answer(r, 200) for r in responses]
    assert bodies == [{"text": f"HI {i}", "peer": "127.0.0.1"} for i in range(8)]
    assert bridge.in_flight == 0


async def test_actor_judging_the_content_invalid_is_400(client: TestClient,
                                                        bridge: EdgeBridge[Inbound]) -> None:
    with ActorThread(bridge, echo_actor):
        body = await answer(await client.post("/echo", json={"text": "judge"}), 400)
    assert body["fields"] == [{"field": "text", "error": "forbidden word"}]


async def test_actor_failure_is_500_json_and_the_server_keeps_serving(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    with ActorThread(bridge, echo_actor):
        body = await answer(await client.post("/echo", json={"text": "boom"}), 500)
        assert body == {"type": "about:blank", "title": "Internal Server Error", "status": 500,
                        "detail": "internal error", "error": "internal error",
                        "error_type": "RuntimeError"}
        assert (await answer(await client.post("/echo", json={"text": "ok"}), 200))["text"] == "OK"


async def test_actor_that_does_not_answer_in_time_is_504(client: TestClient,
                                                         bridge: EdgeBridge[Inbound]) -> None:
    with ActorThread(bridge, echo_actor):
        body = await answer(await client.post("/echo/hasty", json={"text": "ignore"}), 504)
    assert "0.05" in body["error"] and body["timeout_s"] == 0.05


# --- /health and /metrics -------------------------------------------------------------------------

async def test_health_is_200_json(client: TestClient) -> None:
    body = await answer(await client.get("/health"), 200)
    assert body == {"status": "ok", "in_flight": 0, "max_in_flight": 8}


async def test_health_is_503_once_the_bridge_is_closed(client: TestClient,
                                                       bridge: EdgeBridge[Inbound]) -> None:
    bridge.close()
    assert (await answer(await client.get("/health"), 503))["status"] == "closing"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_requests_records_and_latency_after_traffic(
        client: TestClient, bridge: EdgeBridge[Inbound]) -> None:
    await answer(await client.post("/readings", json={"sensor": "s", "value": 1}), 202)
    await answer(await client.post("/readings", json={"sensor": "s", "value": 2}), 202)
    await answer(await client.post("/readings", json={"sensor": "s"}), 400)
    batch = [{"sensor": "s", "value": i} for i in range(5)]
    await answer(await client.post("/readings/batch", json=batch), 202)
    await answer(await client.get("/nowhere/1"), 404)
    await answer(await client.get("/nowhere/2"), 404)

    response = await client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    got = samples(await response.text())

    def requests(route: str, status: str) -> float:
        return got[("ptr_edge_http_requests_total", (("route", route), ("status", status)))]

    assert requests("/readings", "202") == 2
    assert requests("/readings", "400") == 1
    assert requests("/readings/batch", "202") == 1
    assert requests("unmatched", "404") == 2, "unknown paths share one label"
    assert got[("ptr_edge_http_records_accepted_total", (("route", "/readings"),))] == 2
    assert got[("ptr_edge_http_records_accepted_total", (("route", "readings-batch"),))] == 5
    assert got[("ptr_edge_http_request_duration_seconds_count", (("route", "/readings"),))] == 3
    assert got[("ptr_edge_http_requests_in_flight", ())] == 1  # this very /metrics request
    assert got[("ptr_edge_bridge_in_flight", ())] == 3


# --- building the app -----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "timeout_s"), [
    ("POST", "no-slash", 1.0), ("PO ST", "/a", 1.0), ("POST", "/a", 0.0)])
def test_impossible_route_is_refused_when_declared(method: str, path: str,
                                                   timeout_s: float) -> None:
    with pytest.raises(SpecError):
        Route(method, path, Echo, Answer.REPLY, timeout_s=timeout_s)


@pytest.mark.parametrize(("routes", "networks", "error"), [
    ([Route("POST", "/a", Reading), Route("post", "/a", Echo)], ["127.0.0.0/8"], SpecError),
    ([Route("GET", "/health", Reading)], ["127.0.0.0/8"], SpecError),
    ([Route("POST", "/a", Opaque)], ["127.0.0.0/8"], SpecError),
    (ROUTES, ["127.0.0.1/8"], ConfigError),  # host bits set: a typo more often than not
    (ROUTES, ["localhost"], ConfigError),
    (ROUTES, [], ConfigError),
])
def test_impossible_app_is_refused_when_built(routes: list[Route], networks: list[str],
                                              error: type[Exception],
                                              bridge: EdgeBridge[Inbound]) -> None:
    with pytest.raises(error):
        build_app(routes, bridge=bridge, max_body_bytes=MAX_BODY, allow_networks=networks)


# --- TLS and a real server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("certs")
    ensure_self_signed(path)
    return path


@pytest.fixture
async def https_server(cert_dir: Path, bridge: EdgeBridge[Inbound]) -> AsyncIterator[HttpServer]:
    app = build_app(ROUTES, bridge=bridge, max_body_bytes=MAX_BODY, allow_networks=["127.0.0.0/8"])
    server = HttpServer(app, host="127.0.0.1", port=0, ssl_context=self_signed_context(cert_dir))
    port = await server.start()
    assert port > 0 and server.url == f"https://127.0.0.1:{port}"
    yield server
    await server.stop()


async def test_https_request_with_the_self_signed_certificate_succeeds(
        https_server: HttpServer, cert_dir: Path) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{https_server.url}/health", ssl=client_context(cert_dir)) as r:
            assert (await answer(r, 200))["status"] == "ok"


async def test_plain_http_client_cannot_talk_to_the_https_server(https_server: HttpServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{https_server.port}/health") as r:
                await r.read()


async def test_client_trusting_another_certificate_is_refused(https_server: HttpServer,
                                                              tmp_path: Path) -> None:
    ensure_self_signed(tmp_path / "other")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{https_server.url}/health", ssl=client_context(tmp_path / "other"))


def test_self_signed_pair_is_made_once_and_reused(tmp_path: Path) -> None:
    context = self_signed_context(tmp_path / "tls")
    assert isinstance(context, ssl.SSLContext)
    cert, key = ensure_self_signed(tmp_path / "tls")
    first = (cert.read_bytes(), key.read_bytes())
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    self_signed_context(tmp_path / "tls")
    assert (cert.read_bytes(), key.read_bytes()) == first


def test_self_signed_pair_is_replaced_when_a_new_host_name_is_asked_for(tmp_path: Path) -> None:
    cert, _ = ensure_self_signed(tmp_path)
    first = cert.read_bytes()
    ensure_self_signed(tmp_path, ["localhost", "127.0.0.1", "edge.example"])
    second = cert.read_bytes()
    assert second != first
    ensure_self_signed(tmp_path, ["edge.example"])  # covered by the new one: kept
    assert cert.read_bytes() == second


def test_https_reply_route_served_from_a_loop_thread(cert_dir: Path) -> None:
    """The way an actor hosts the edge: loop in its own thread, the actor side draining wake_fd."""
    bridge: EdgeBridge[Inbound] = EdgeBridge(max_in_flight=8)
    app = build_app(ROUTES, bridge=bridge, max_body_bytes=MAX_BODY, allow_networks=["127.0.0.0/8"])
    server = HttpServer(app, ssl_context=self_signed_context(cert_dir))
    with LoopThread() as loop_thread, ActorThread(bridge, echo_actor):
        loop_thread.run(server.start(), timeout_s=5)
        try:
            request = urllib.request.Request(f"{server.url}/echo", data=b'{"text":"over tls"}',
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=client_context(cert_dir), timeout=5) as r:
                assert r.status == 200
                assert json.loads(r.read()) == {"text": "OVER TLS", "peer": "127.0.0.1"}
        finally:
            loop_thread.run(server.stop(), timeout_s=10)
    bridge.close()
