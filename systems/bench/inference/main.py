"""``ptr bench inference``: the ML prediction service measured in one run, on multiprocTCPBase.

1. **Model** (in the bench's own process, one onnxruntime thread): ms per image of the OCR model
   on ``model_images`` rendered text images, one at a time and in batches of ``max_batch``
   (``model_ms_b1``, ``model_ms_batched``, ``model_batch_gain``): what batching saves inside the
   model alone, before any queue or message.
The three modes of 2 and 3 take turns ``rounds`` times (``images / rounds`` each per round), so
that a busy stretch of a shared machine does not fall on one of them; in a round every mode reads
the same words with tags of the same length (a longer line costs the recognizer more).

2. **Batched**: ``clients`` closed-loop clients (each uploads an image, waits for its result,
   uploads the next) send ``images`` distinct rendered text images through ``POST /predictions``;
   ``batched_per_s`` is images answered per second, ``batched_p95_ms`` the 95th percentile of
   upload-to-stored-result. Dynamic batching as configured (``max_batch``, ``max_delay_s``,
   adaptive).
3. **Batch 1**: the same with ``SetBatching(max_size=1)`` sent to the same dispatcher (same workers,
   same processes): ``batch1_per_s``, ``batch1_p95_ms``. ``batching_gain`` = batched / batch 1.
   Then **fixed batches** (``adaptive=False``: size and delay only, no cost line):
   ``fixed_per_s``, ``fixed_p95_ms``, ``fixed_mean_batch``, ``fixed_gain`` = fixed / batch 1,
   which shows what batching itself does when the adaptive cap does not step in (the adaptive
   figures have ``adaptive_cap`` and the cost line beside them).
4. **Kills**: ``chaos_images`` more images (batches of ``max_batch``, not adaptive, so that each
   kill lands in a batch of several) while ``kills`` SIGKILLs hit busy workers (mid-batch);
   then every accepted job must be answered: ``jobs_lost`` (accepted, never answered) and
   ``results_duplicated`` (results computed again after one was stored; each key is stored once by
   its primary key) must be 0.
5. **Uploads**: ``upload_files`` images of ``upload_mb`` MB (uncompressed BMP, each different)
   streamed to the blob store by one client (``upload_mb_per_s``: bytes over the time to each 200,
   durable queue append included), beside the same bytes written and fsynced to a file in the same
   directory by plain Python (``bare_write_mb_per_s``).
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actors.inference.load import WORDS, post_image, render_text
from actors.inference.store import RESULTS, JobStore
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.inference import GetQueueStats, QueueStats, SetBatching
from systems.inference import DISPATCHER, HTTP, SYSTEM, InferenceSettings
from systems.runtime import ActorRuntime

FLOORS = {"batching_gain": 1.5, "jobs_lost": 0, "results_duplicated": 0,
          "batched_p95_no_worse_than_batch1": True}
MARK = {"batching_gain": 3.7}   # Triton's published dynamic-batching gain (GPU)


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class _Results:
    """One thread polls the results database for the jobs the clients wait on (every 5 ms, one
    query for all of them) and wakes each client when its job is answered."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.waiting: dict[str, tuple[str, threading.Event]] = {}
        self.finished_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def wait(self, job_id: str, image_hash: str, timeout_s: float) -> float | None:
        event = threading.Event()
        with self.lock:
            self.waiting[job_id] = (image_hash, event)
        event.wait(timeout_s)
        return self.finished_at.get(job_id)

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            with self.lock:
                waiting = dict(self.waiting)
            if not waiting:
                continue
            hashes = {h for h, _ in waiting.values()}
            with self.store.engine.connect() as connection:
                rows = dict(connection.execute(sa.select(RESULTS.c.image_hash,
                                                         RESULTS.c.finished_at).where(
                    RESULTS.c.image_hash.in_(hashes))).all())
            for job_id, (image_hash, event) in waiting.items():
                if image_hash in rows:
                    self.finished_at[job_id] = rows[image_hash]
                    with self.lock:
                        self.waiting.pop(job_id, None)
                    event.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def _images(count: int, tag: str, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [render_text(f"{rng.choice(WORDS)} {tag}{n}") for n in range(count)]


class _ClosedLoop:
    """``clients`` threads, each: upload, wait for the result, upload the next. The caller's
    thread stays free (the kills are sent from it: the runtime is asked from one thread)."""

    def __init__(self, url: str, images: list[bytes], clients: int, results: _Results) -> None:
        self.url, self.results = url, results
        self.queue = list(images)
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.accepted: list[str] = []
        self.refused = 0
        self.threads = [threading.Thread(target=self._client, daemon=True)
                        for _ in range(clients)]
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def _client(self) -> None:
        import hashlib

        while True:
            with self.lock:
                if not self.queue:
                    return
                data = self.queue.pop()
            sent = time.time()
            status, body, _ = post_image(self.url + "/predictions", data)
            if status != 200:
                with self.lock:
                    self.refused += 1
                continue
            with self.lock:
                self.accepted.append(body["job_id"])
            finished = self.results.wait(body["job_id"], hashlib.sha256(data).hexdigest(), 120)
            if finished is not None:
                with self.lock:
                    self.latencies.append((finished - sent) * 1000)

    def join(self) -> dict[str, Any]:
        for thread in self.threads:
            thread.join()
        elapsed = time.perf_counter() - self.started
        return {"per_s": round(len(self.latencies) / elapsed, 2),
                "p50_ms": round(_p(self.latencies, 0.5), 1),
                "p95_ms": round(_p(self.latencies, 0.95), 1), "answered": len(self.latencies),
                "accepted": self.accepted, "refused": self.refused, "seconds": round(elapsed, 2)}


def _closed_loop(url: str, images: list[bytes], clients: int, results: _Results) -> dict[str, Any]:
    return _ClosedLoop(url, images, clients, results).join()


def measure_model(count: int, batch: int) -> dict[str, float]:
    """ms per image of the model alone, one at a time and in batches of ``batch``."""
    from actors.inference.model import OcrModel, decode

    model = OcrModel(threads=1, rec_batch=InferenceSettings().rec_batch)   # as the workers run
    images = [decode(data) for data in _images(count, "m", 7)]
    model.predict(images[:batch])                  # warm up
    started = time.perf_counter()
    for image in images:
        model.predict([image])
    single = (time.perf_counter() - started) * 1000 / len(images)
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        model.predict(images[start:start + batch])
    batched = (time.perf_counter() - started) * 1000 / len(images)
    return {"model_ms_b1": round(single, 2), "model_ms_batched": round(batched, 2),
            "model_batch_gain": round(single / batched, 3)}


def _bmp(megabytes: float, seed: int) -> bytes:
    """An uncompressed 24-bit BMP of about ``megabytes``, white but for a seed-dependent row."""
    side = max(64, int((megabytes * 1e6 / 3) ** 0.5) // 4 * 4)
    row = side * 3
    pixels = bytearray(b"\xff" * (row * side))
    pixels[:8] = seed.to_bytes(8, "little")
    header = (b"BM" + (54 + len(pixels)).to_bytes(4, "little") + bytes(4)
              + (54).to_bytes(4, "little"))
    info = (40).to_bytes(4, "little") + side.to_bytes(4, "little") + side.to_bytes(4, "little") \
        + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(4) \
        + len(pixels).to_bytes(4, "little") + bytes(16)
    return header + info + bytes(pixels)


def _uploads(url: str, directory: Path, files: int, megabytes: float) -> dict[str, Any]:
    bodies = [_bmp(megabytes, 1000 + n) for n in range(files)]
    total = sum(len(b) for b in bodies) / 1e6
    started = time.perf_counter()
    statuses = [post_image(url + "/predictions", body, "image/bmp", timeout_s=120)[0]
                for body in bodies]
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    for n, body in enumerate(bodies):
        path = directory / f"bare-{n}.bmp"
        with open(path, "wb") as out:
            for offset in range(0, len(body), 1 << 16):
                out.write(body[offset:offset + (1 << 16)])
            out.flush()
            os.fsync(out.fileno())
    bare_s = time.perf_counter() - started
    return {"upload_mb": round(total, 1), "upload_statuses": sorted(set(statuses)),
            "upload_mb_per_s": round(total / upload_s, 1),
            "bare_write_mb_per_s": round(total / bare_s, 1),
            "upload_ratio": round(bare_s / upload_s, 3)}


def run(images: int = 600, clients: int = 16, workers: int = 2, max_batch: int = 8,
        max_delay_s: float = 0.02, kills: int = 20, chaos_images: int = 400,
        upload_files: int = 8, upload_mb: float = 20.0, model_images: int = 64,
        model: bool = True, rounds: int = 4) -> dict[str, Any]:
    result: dict[str, Any] = {"base": "multiprocTCPBase", "workers": workers,
                              "clients": clients, "images": images, "max_batch": max_batch,
                              "max_delay_s": max_delay_s, "floors": FLOORS, "mark": MARK}
    if model:
        result.update(measure_model(model_images, max_batch))
    with tempfile.TemporaryDirectory(prefix="ptr-bench-inference-") as tmp:
        settings = SYSTEM.settings(overrides={
            "data_dir": tmp, "http_port": 0, "workers": workers, "max_batch": max_batch,
            "max_delay_s": max_delay_s, "queue_bound": 100_000, "max_upload_bytes": 1 << 30,
            "worker_restart_intensity": max(100, kills * 5)})
        assert isinstance(settings, InferenceSettings)
        with ActorRuntime(SYSTEM.tree(settings), base="multiproc", name="inference") as rt:
            rt.start()
            info = rt.ask(HTTP, GetEdgeInfo(), 10)
            assert isinstance(info, EdgeInfo)
            url = f"http://{info.host}:{info.port}"
            rt.wait_for(lambda: len(_stats(rt).workers) >= workers, timeout_s=60,
                        what="workers ready")
            store = JobStore(settings.resolved_storage_url("inference"))
            results = _Results(store)
            try:
                result.update(_phases(rt, url, store, results, images, clients, max_batch,
                                      max_delay_s, kills, chaos_images, rounds))
                result.update(_uploads(url, Path(tmp), upload_files, upload_mb))
            finally:
                results.close()
                store.close()
    result["model_version"] = __import__("actors.inference.model", fromlist=["x"]).model_version()
    result["meets_floors"] = {
        "batching_gain": result["batching_gain"] >= FLOORS["batching_gain"],
        "batched_p95_no_worse_than_batch1": result["batched_p95_ms"] <= result["batch1_p95_ms"],
        "jobs_lost": result["jobs_lost"] == 0,
        "results_duplicated": result["results_duplicated"] == 0}
    return result


def _stats(rt: ActorRuntime) -> QueueStats:
    stats = rt.ask(DISPATCHER, GetQueueStats(), 10)
    assert isinstance(stats, QueueStats)
    return stats


MODES: dict[str, tuple[str, bool]] = {   # name -> (max_size "batch" or "1", adaptive)
    "batched": ("batch", True), "batch1": ("1", False), "fixed": ("batch", False)}


def _phases(rt: ActorRuntime, url: str, store: JobStore, results: _Results, images: int,
            clients: int, max_batch: int, max_delay_s: float, kills: int, chaos_images: int,
            rounds: int) -> dict[str, Any]:
    """The three modes take turns, ``rounds`` times, each with ``images / rounds`` fresh images,
    so that a slow or busy stretch of a shared machine falls on all of them alike. Each mode's
    throughput is its images answered over its own time; its latencies are pooled."""
    out: dict[str, Any] = {}
    _closed_loop(url, _images(min(images, 2 * clients), "w", 1), clients, results)   # warm up
    per_round = max(clients, images // rounds)
    answered = dict.fromkeys(MODES, 0)
    seconds = dict.fromkeys(MODES, 0.0)
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    sizes: dict[str, dict[int, int]] = {mode: {} for mode in MODES}
    for round_no in range(rounds):
        for index, (mode, (size, adaptive)) in enumerate(MODES.items()):
            rt.ask(DISPATCHER, SetBatching(max_size=max_batch if size == "batch" else 1,
                                           max_delay_s=max_delay_s if size == "batch" else 0.0,
                                           adaptive=adaptive), 10)
            before = _stats(rt)
            # the same words and tags of the same length in every mode (only the letter naming
            # the mode differs): a longer line costs the recognizer more
            loop = _ClosedLoop(url, _images(per_round, f"{'bsf'[index]}{round_no}-",
                                            100 * round_no), clients, results)
            figures = loop.join()
            after = _stats(rt)
            answered[mode] += figures["answered"]
            seconds[mode] += figures["seconds"]
            latencies[mode] += loop.latencies
            for k, v in after.batch_sizes.items():
                sizes[mode][k] = sizes[mode].get(k, 0) + v - before.batch_sizes.get(k, 0)
            if mode == "batched":
                out.update(cost_fixed_ms=after.cost_fixed_ms,
                           cost_per_image_ms=after.cost_per_image_ms, adaptive_cap=after.cap)
    for mode in MODES:
        counts = {k: v for k, v in sorted(sizes[mode].items()) if v}
        out[f"{mode}_per_s"] = round(answered[mode] / seconds[mode], 2) if seconds[mode] else 0.0
        out[f"{mode}_p50_ms"] = round(_p(latencies[mode], 0.5), 1)
        out[f"{mode}_p95_ms"] = round(_p(latencies[mode], 0.95), 1)
        out[f"{mode}_mean_batch"] = round(sum(k * v for k, v in counts.items())
                                          / max(1, sum(counts.values())), 2)
        out[f"{mode}_sizes"] = counts
    single = out["batch1_per_s"]
    out["batching_gain"] = round(out["batched_per_s"] / single, 3) if single else 0.0
    out["fixed_gain"] = round(out["fixed_per_s"] / single, 3) if single else 0.0
    out["rounds"] = rounds
    # full batches while killing: a kill must land in a batch of several images
    rt.ask(DISPATCHER, SetBatching(max_size=max_batch, max_delay_s=max_delay_s, adaptive=False),
           10)
    out.update(_chaos(rt, url, store, results, clients, kills, chaos_images))
    return out


def _chaos(rt: ActorRuntime, url: str, store: JobStore, results: _Results, clients: int,
           kills: int, chaos_images: int) -> dict[str, Any]:
    """Clients send ``chaos_images`` while ``kills`` SIGKILLs, spread over the images answered,
    hit a worker in the middle of a batch of more than one image (never a suspect running alone:
    that would quarantine an innocent image). If the images run out first, more are sent until
    every kill is done."""
    before = _stats(rt)
    killed: list[int] = []
    every = max(1, chaos_images // (kills + 1))
    accepted: list[str] = []
    round_no = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        batch = chaos_images if round_no == 0 else 4 * clients
        loop = _ClosedLoop(url, _images(batch, f"c{round_no}-", 4 + round_no), clients, results)
        while loop.running():
            due = loop.answered >= every * (len(killed) + 1) if round_no == 0 else True
            if len(killed) < kills and due:
                _kill_one(rt, killed)
            else:
                time.sleep(0.005)   # polling the clients' progress; nothing to wait on
        accepted += loop.join()["accepted"]
        round_no += 1
        if len(killed) >= kills:
            break
    rt.wait_for(lambda: (lambda s: s.depth == 0 and s.in_flight == 0)(_stats(rt)),
                timeout_s=120, what="the queue drained")
    after = _stats(rt)
    return {"kills": len(killed), "chaos_accepted": len(accepted),
            "jobs_lost": len(store.unanswered_jobs()),
            "results_duplicated": after.duplicates - before.duplicates,
            "requeued_after_kills": after.requeued - before.requeued,
            "quarantined_after_kills": after.quarantined - before.quarantined}


def _kill_one(rt: ActorRuntime, killed: list[int]) -> None:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        busy = [w for w in _stats(rt).workers if w.busy and w.batch_size > 1
                and w.pid not in killed]
        if busy:
            try:
                os.kill(busy[0].pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(busy[0].pid)
            return
        time.sleep(0.002)   # polling the dispatcher for a busy worker; nothing to wait on


if __name__ == "__main__":   # pragma: no cover
    import json
    print(json.dumps(run()))
