"""The prediction API as a client sees it, the real model behind it: upload limits and bad
content, polling, dedup by hash, server-sent events, shedding, the OpenAPI document."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid

import pytest

from tests.inference.service import render_text, start_service


@pytest.fixture
def service(make_runtime, tmp_path):
    return start_service(make_runtime, tmp_path, max_upload_bytes=20_000)


def test_an_upload_is_queued_read_by_the_model_and_polled(service) -> None:
    data = render_text("HELLO 42")
    status, accepted, _ = service.post(data)
    assert status == 200 and accepted["state"] == "queued" and not accepted["cached"]
    assert accepted["image_hash"] == hashlib.sha256(data).hexdigest()
    views = service.wait_answered([accepted["job_id"]])
    status, view = service.get(f"/predictions/{accepted['job_id']}")
    assert status == 200 and view["state"] == "done"
    assert [line["text"] for line in view["lines"]] == ["HELLO 42"]
    assert views[accepted["job_id"]].lines[0].text == "HELLO 42"
    link_path = service.settings.blob_dir() + f"/{accepted['image_hash'][:2]}"
    assert any(p.name == accepted["image_hash"] for p in __import__("pathlib").Path(
        link_path).rglob("*"))                                 # the image is in the blob store


def test_identical_images_are_answered_from_the_stored_result(service) -> None:
    data = render_text("same 1")
    _, first, _ = service.post(data)
    service.wait_answered([first["job_id"]])
    status, again, _ = service.post(data)
    assert status == 200 and again["cached"] and again["state"] == "done"
    assert again["job_id"] != first["job_id"]
    _, view = service.get(f"/predictions/{again['job_id']}")
    assert [line["text"] for line in view["lines"]] == ["same 1"]
    stats = service.stats()
    assert stats.deduplicated == 1 and stats.completed == 1    # one inference for two jobs


def test_uploads_over_the_limit_get_413_and_what_is_not_an_image_415(service) -> None:
    status, body, _ = service.post(b"\x89PNG\r\n\x1a\n" + bytes(30_000))
    assert status == 413 and body["refusal"] == "too_large" and body["max_bytes"] == 20_000
    status, body, _ = service.post(b"just some text, not an image", "text/plain")
    assert status == 415 and body["refusal"] == "unsupported" and "image/png" in body["accepted"]
    status, body, _ = service.post(b"\x89PNG\r\n\x1a\n" + b"garbage after a PNG signature")
    assert status == 415
    status, body, _ = service.post(b"")
    assert status == 400
    status, body = service.get(f"/predictions/{uuid.uuid4().hex}")
    assert status == 404 and body["refusal"] == "not_found"
    status, body = service.get("/predictions/not-an-id")
    assert status == 400
    assert service.stats().accepted == 0
    assert list(__import__("pathlib").Path(service.settings.blob_dir()).rglob(".tmp-*")) == []


def test_a_multipart_form_upload_is_taken_like_a_raw_body(service) -> None:
    data = render_text("form 5")
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    status, accepted, _ = service.post(body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and accepted["image_hash"] == hashlib.sha256(data).hexdigest()
    view = service.wait_answered([accepted["job_id"]])[accepted["job_id"]]
    assert [line.text for line in view.lines] == ["form 5"]


def test_server_sent_events_push_the_result_when_it_is_ready(service) -> None:
    _, accepted, _ = service.post(render_text("queue 12"))
    request = urllib.request.Request(f"{service.url}/predictions/{accepted['job_id']}/events")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [block for block in response.read().decode().split("\n\n") if block]
    names = [block.splitlines()[0].removeprefix("event: ") for block in events]
    assert names[-1] == "result" and names[0] == "state"
    result = json.loads(events[-1].splitlines()[1].removeprefix("data: "))
    assert result["state"] == "done" and [l["text"] for l in result["lines"]] == ["queue 12"]


def test_the_openapi_document_describes_the_upload_and_its_refusals(service) -> None:
    status, document = service.get("/openapi.json")
    assert status == 200
    upload = document["paths"]["/predictions"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"413", "415", "503"} <= set(upload["responses"])
    assert "Retry-After" in upload["responses"]["503"]["headers"]
    events = document["paths"]["/predictions/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]


def test_past_the_queue_bound_uploads_get_503_with_retry_after(make_runtime, tmp_path) -> None:
    service = start_service(make_runtime, tmp_path, workers=0, queue_bound=2)  # nobody drains
    answers = [service.post(render_text(f"shed {n}")) for n in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 503]
    status, body, headers = answers[2]
    assert body["refusal"] == "unavailable" and int(headers["Retry-After"]) >= 1
    assert service.stats().shed == 1 and service.stats().depth == 2
