"""Workers that die: a SIGKILL mid-batch returns only that batch's unfinished images and every
accepted job is answered exactly once; an input that crashes workers twice is quarantined with its
reason; the queue on NATS JetStream (a real server) answers jobs as the SQLite one does."""

from __future__ import annotations

import io
import os
import signal
import uuid

from PIL import Image

from tests.inference.service import render_text, start_service
from tests.support.services import require_service

TEXTS = ["HELLO 42", "Batch 7", "queue 12", "SQLite 5", "kill -9", "ptr inference", "worker 3",
         "same 1"]


def test_kill_9_of_a_worker_mid_batch_answers_every_job_exactly_once(make_runtime,
                                                                     tmp_path) -> None:
    service = start_service(make_runtime, tmp_path, workers=2, max_batch=8, max_delay_s=5.0,
                            adaptive=False)
    images = [render_text(t, size=(448, 96), font_size=44) for t in TEXTS]
    images += [render_text(f"{t} {n}", size=(448, 96), font_size=44)
               for n, t in enumerate(TEXTS)]
    job_ids = [service.post(data)[1]["job_id"] for data in images]      # two full batches of 8
    stats = service.rt.wait_for(lambda: (lambda s: s if sum(w.busy for w in s.workers) == 2
                                         else None)(service.stats()),
                                timeout_s=10, interval_s=0.002, what="two batches running")
    victim = next(w for w in stats.workers if w.busy)
    os.kill(victim.pid, signal.SIGKILL)
    views = service.wait_answered(job_ids, timeout_s=60)
    stats = service.stats()
    assert stats.requeued == 8, "exactly the killed batch came back"
    assert stats.quarantined == 0 and stats.duplicates == 0
    assert all(view.state == "done" for view in views.values())
    counts = service.store.counts()
    assert counts == {"jobs": 16, "results": 16, "quarantined": 0}   # one result per image
    pids = {row[0] for row in service.store.engine.connect().exec_driver_sql(
        "SELECT DISTINCT worker_pid FROM inference_results")}
    assert victim.pid not in pids
    assert service.store.unanswered_jobs() == []


def test_an_input_that_crashes_workers_twice_is_quarantined_with_its_reason(make_runtime,
                                                                           tmp_path) -> None:
    service = start_service(make_runtime, tmp_path, workers=1, max_pixels=100_000)
    bomb = io.BytesIO()
    Image.new("L", (600, 600), 255).save(bomb, format="PNG")   # 360k pixels: a small bomb
    status, poisoned, _ = service.post(bomb.getvalue())
    assert status == 200                                        # the edge only reads the header
    _, fine, _ = service.post(render_text("HELLO 42"))
    views = service.wait_answered([poisoned["job_id"], fine["job_id"]], timeout_s=60)
    held = views[poisoned["job_id"]]
    assert held.state == "quarantined" and held.error.count("DecompressionBombError") == 2
    assert [line.text for line in views[fine["job_id"]].lines] == ["HELLO 42"]
    stats = service.stats()
    assert stats.quarantined == 1
    status, view = service.get(f"/predictions/{poisoned['job_id']}")
    assert status == 200 and view["state"] == "quarantined"
    _, again, _ = service.post(bomb.getvalue())                 # not retried: answered at once
    assert again["cached"] and again["state"] == "done"
    assert service.store.job(again["job_id"]).state == "quarantined"


def test_the_queue_on_nats_jetstream_answers_jobs(make_runtime, tmp_path) -> None:
    require_service("NATS JetStream", "127.0.0.1", 4222)
    prefix = f"PTR_INF_TEST_{uuid.uuid4().hex[:8]}"
    service = start_service(make_runtime, tmp_path, queue_url=f"nats://127.0.0.1:4222/{prefix}")
    ids = [service.post(render_text(t))[1]["job_id"] for t in ("Batch 7", "SQLite 5")]
    views = service.wait_answered(ids)
    assert [[line.text for line in views[i].lines] for i in ids] == [["Batch 7"], ["SQLite 5"]]
    from actors.inference.store import QUEUE_GROUP, QUEUE_TOPIC, open_queue
    with open_queue(f"nats://127.0.0.1:4222/{prefix}") as log:
        assert log.end_offset(QUEUE_TOPIC) == 2
        assert service.rt.wait_for(lambda: log.committed(QUEUE_GROUP, QUEUE_TOPIC) == 2,
                                   timeout_s=10, what="offset committed")


def test_jobs_acknowledged_before_a_kill_9_of_the_dispatcher_are_all_answered(make_runtime,
                                                                             tmp_path) -> None:
    service = start_service(make_runtime, tmp_path, workers=1)
    ids = [service.post(render_text(t))[1]["job_id"] for t in TEXTS[:6]]
    before = service.rt.which_child("dispatcher").info
    os.kill(before.pid, signal.SIGKILL)                 # acknowledged: in the log, not in memory
    views = service.wait_answered(ids, timeout_s=60)
    assert [views[i].lines[0].text for i in ids] == TEXTS[:6]
    after = service.rt.which_child("dispatcher").info
    assert after.pid != before.pid and after.restarts == 1
    assert service.store.counts() == {"jobs": 6, "results": 6, "quarantined": 0}
    status, accepted, _ = service.post(render_text(TEXTS[0]))   # the new one takes uploads
    assert status == 200 and accepted["cached"]
