"""System 6, the ML prediction service: images by link, a durable queue, batching workers, results
exactly once.

    /inference (one_for_one)
    ├── workers     simple_one_for_one: InferenceWorker processes (the OCR model, one batch at a
    │               time); the dispatcher starts ``workers`` of them
    ├── dispatcher  the durable queue (SQLite log, or NATS JetStream by URL), dynamic batching,
    │               load shedding, the workers' liveness and the quarantine (Dispatcher)
    └── http        POST /predictions (streamed into the blob store), GET /predictions/{id},
                    GET /predictions/{id}/events (SSE), /openapi.json (PredictionEdge)

``ptr run inference --simulate`` adds a client sending a mixed load of images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from actors.inference.dispatcher import Dispatcher
from actors.inference.edge import PredictionEdge, prediction_routes
from actors.inference.load import MixedLoad
from actors.inference.worker import InferenceWorker
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.errors import PtrError
from protocols.inference import GetQueueStats, QueueStats
from supervisors.spec import ChildSpec, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec

DISPATCHER = "inference-dispatcher"
WORKERS = "inference-workers"
HTTP = "inference-http"


class InferenceSettings(SystemSettings):
    """Every knob of the prediction service; ``--set KEY=VALUE`` or a TOML ``[inference]`` table.

    ``queue_url`` empty: a SQLite log in ``data_dir``; ``nats://host:port/PREFIX``: JetStream.
    ``storage_url`` (from SystemSettings) empty: the results in ``data_dir/inference.db``.
    """

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8800, ge=0, le=65535)
    allow_networks: list[str] = ["127.0.0.1/32", "::1/128"]
    queue_url: str = ""
    max_upload_bytes: int = Field(default=50 << 20, ge=1)
    workers: int = Field(default=2, ge=0, le=32)   # 0: the pool starts empty
    worker_threads: int = Field(default=1, ge=1)
    det_max_side: int = Field(default=640, ge=32)
    rec_batch: int = Field(default=1, ge=1)   # text lines per recognizer call (1: fastest here)
    max_pixels: int = Field(default=40_000_000, ge=1)
    max_batch: int = Field(default=8, ge=1, le=256)
    max_delay_s: float = Field(default=0.02, ge=0)
    adaptive: bool = True
    queue_bound: int = Field(default=1000, ge=1)
    liveness_s: float = Field(default=0.02, gt=0)
    worker_restart_intensity: int = Field(default=100, ge=0)
    worker_restart_period_s: float = Field(default=10.0, gt=0)
    simulate_per_s: float = Field(default=10.0, gt=0)

    def queue(self) -> str:
        return self.queue_url or f"sqlite:///{Path(self.data_dir) / 'inference-queue.db'}"

    def blob_dir(self) -> str:
        return str(Path(self.data_dir) / "inference-blobs")


def build_tree(s: InferenceSettings) -> SupervisorSpec:
    storage = s.resolved_storage_url("inference")
    pool = SupervisorSpec(
        Strategy.SIMPLE_ONE_FOR_ONE,
        [ChildSpec("worker", InferenceWorker, args={
            "dispatcher": DISPATCHER, "storage_url": storage, "blob_dir": s.blob_dir(),
            "threads": s.worker_threads, "det_max_side": s.det_max_side,
            "rec_batch": s.rec_batch,
            "max_pixels": s.max_pixels})],
        intensity=s.worker_restart_intensity, period_s=s.worker_restart_period_s)
    return SupervisorSpec(Strategy.ONE_FOR_ONE, [
        pool.as_child("workers", name=WORKERS),
        ChildSpec("dispatcher", Dispatcher, name=DISPATCHER, args={
            "queue_url": s.queue(), "storage_url": storage, "max_batch": s.max_batch,
            "max_delay_s": s.max_delay_s, "adaptive": s.adaptive, "queue_bound": s.queue_bound,
            "liveness_s": s.liveness_s, "pool": WORKERS, "pool_size": s.workers}),
        ChildSpec("http", PredictionEdge, name=HTTP, args={
            "routes": prediction_routes(), "target": DISPATCHER, "blob_dir": s.blob_dir(),
            "storage_url": storage, "max_upload_bytes": s.max_upload_bytes,
            "host": s.http_host, "port": s.http_port, "allow": list(s.allow_networks)}),
    ])


def edges(s: InferenceSettings) -> list[str]:
    return [f"predictions HTTP http://{s.http_host}:{s.http_port or '(a free port)'}/predictions"]


def status(runtime: Any, s: InferenceSettings) -> str:
    """One line a second: queue depth, workers and their batch sizes, answers so far."""
    try:
        q = runtime.ask(DISPATCHER, GetQueueStats(), 2)
    except PtrError as exc:
        return f"dispatcher unavailable ({type(exc).__name__})"
    assert isinstance(q, QueueStats)
    busy = ", ".join(f"{w.worker_id}:{w.batch_size if w.busy else '-'}" for w in q.workers)
    sizes = " ".join(f"{size}x{count}" for size, count in sorted(q.batch_sizes.items()))
    return (f"queue depth {q.depth}, in flight {q.in_flight}; workers [{busy}]; "
            f"accepted {q.accepted}, completed {q.completed}, deduplicated {q.deduplicated}, "
            f"shed {q.shed}, quarantined {q.quarantined}, requeued {q.requeued}; "
            f"batches {q.batches} (recent mean {q.recent_batch:.1f}; sizes {sizes or '-'}; "
            f"cap {q.cap}{_line(q)})")


def _line(q: QueueStats) -> str:
    if q.cost_fixed_ms is None:
        return ""
    return f", cost {q.cost_fixed_ms:.1f} ms/batch + {q.cost_per_image_ms:.1f} ms/image"


def inspect_extra(runtime: Any) -> dict[str, Any]:
    """What ``ptr inspect`` shows under the tree: queue depth, workers and their batch sizes."""
    q = runtime.ask(DISPATCHER, GetQueueStats(), 2)
    assert isinstance(q, QueueStats)
    return {"queue depth": q.depth, "in flight": q.in_flight,
            "workers": {w.worker_id: {"pid": w.pid, "batch": w.batch_size if w.busy else 0,
                                      "batches": w.batches, "images": w.items}
                        for w in q.workers},
            "batch sizes": {str(k): v for k, v in sorted(q.batch_sizes.items())},
            "batch cap": q.cap, "completed": q.completed, "quarantined": q.quarantined,
            "shed": q.shed}


class SimulatedClients:
    """What ``--simulate`` returns: the load thread; ``stop`` prints its summary."""

    def __init__(self, load: MixedLoad) -> None:
        self.load = load

    def stop(self) -> None:
        self.load.stop()
        st = self.load.stats
        print(f"inference: simulated clients sent {st.sent}: queued {st.queued}, cached "
              f"{st.cached}, shed {st.shed}, rejected {st.rejected}, answered {st.answered}; "
              f"last texts read {st.texts}", flush=True)


def simulator(runtime: Any, s: InferenceSettings) -> SimulatedClients:
    info = runtime.ask(HTTP, GetEdgeInfo(), 10)
    assert isinstance(info, EdgeInfo)
    return SimulatedClients(MixedLoad(f"http://{info.host}:{info.port}", s.simulate_per_s).start())


def listen_ports(s: InferenceSettings) -> dict[str, int]:
    return {"http_port": s.http_port} if s.http_port else {}


SYSTEM = SystemSpec(name="inference", summary="ML prediction service: OCR on uploaded images, "
                    "durable queue, batching workers, results exactly once",
                    build_tree=build_tree, settings_model=InferenceSettings, status=status,
                    edges=edges, simulator=simulator, listen_ports=listen_ports,
                    inspect_extra=inspect_extra)
