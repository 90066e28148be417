"""What the ML prediction service says: submissions (a blob link, never the image bytes), job views,
the batches the dispatcher hands its workers, and the statistics ``ptr inspect`` and the bench read.

A job is one client request; its work is keyed by ``(image_hash, model_version)``: identical
images share one inference and one stored result. States: ``queued`` (durably in the queue),
``running`` (in a worker's batch), ``done`` (text lines stored), ``failed`` (the bytes did not
decode: a stored answer too), ``quarantined`` (the input crashed workers twice; ``error`` says how).

The service raises only the framework's exceptions (``protocols.errors``): an upload that is not
an image is a ``RefusedError`` of kind ``unsupported`` (HTTP 415).

Pure data: nothing here imports Thespian, the database, the model or the network.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocols.message import BulkMessage, Message, WireBody

JobState = Literal["queued", "running", "done", "failed", "quarantined"]
FINAL_STATES: frozenset[str] = frozenset({"done", "failed", "quarantined"})


class Submission(Message):
    """Edge -> dispatcher (inside an ``EdgeItem``): an uploaded image, already in the blob store."""

    link: str
    image_hash: str
    size: int
    media_type: str


class JobAccepted(WireBody):
    """The answer to ``POST /predictions``: the job is durably queued, or already answered from a
    stored result (``cached``)."""

    job_id: str
    state: JobState
    image_hash: str
    model_version: str
    cached: bool = False


class TextLine(WireBody):
    text: str
    score: float
    box: list[int] = Field(min_length=4, max_length=4)


class JobView(WireBody):
    """``GET /predictions/{job_id}``: where the job is, and its text once done."""

    job_id: str
    state: JobState
    image_hash: str
    model_version: str
    lines: list[TextLine] = []
    error: str = ""
    cached: bool = False
    submitted_at: float = 0.0
    finished_at: float | None = None


class JobParams(WireBody):
    job_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the id POST /predictions gave")


class EventParams(WireBody):
    job_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="the id POST /predictions gave")
    timeout_s: float = Field(default=60.0, gt=0, le=600,
                             description="close the stream after this long without a result")


# --- dispatcher <-> workers ------------------------------------------------------------------

class WorkerReady(Message):
    """Worker -> dispatcher, after its model loaded (again after each restart): it takes batches.
    ``pid`` is its OS process, which the dispatcher watches (a SIGKILL sends nothing)."""

    worker_id: str
    pid: int


class WorkItem(Message):
    image_hash: str
    link: str
    solo: bool = False   # a suspect after a crash: run alone, so a second crash names it


class WorkBatch(BulkMessage):
    """Dispatcher -> worker: up to ``max_batch`` distinct images to read, infer and commit."""

    batch_id: int
    model_version: str
    items: list[WorkItem]


class BatchDone(Message):
    """Worker -> dispatcher: the batch's results are committed (one transaction). ``failed`` maps
    the hashes that did not decode to why; ``duplicates`` counts results that were already stored
    (work done twice; the stored result was kept)."""

    batch_id: int
    pid: int
    done: list[str]
    failed: dict[str, str] = {}
    duplicates: int = 0
    infer_ms: float = 0.0


class BatchAbandoned(Message):
    """Worker -> dispatcher, from a crashing worker's ``on_stop``: the batch did not finish."""

    batch_id: int
    pid: int
    reason: str


class SetBatching(Message):
    """Change the batching rules at run time (the bench forces ``max_size=1``)."""

    max_size: int = Field(ge=1)
    max_delay_s: float = Field(ge=0)
    adaptive: bool = True


class GetQueueStats(Message):
    pass


class WorkerStat(Message):
    worker_id: str
    pid: int
    busy: bool
    batch_size: int
    batches: int
    items: int


class QueueStats(BulkMessage):
    """What ``ptr inspect``'s status line and the bench read from the dispatcher."""

    depth: int                 # images waiting (not in a worker)
    in_flight: int             # images in workers' batches
    workers: list[WorkerStat]
    accepted: int              # jobs acknowledged as queued
    deduplicated: int          # jobs answered from a stored result, or joined to queued work
    shed: int                  # submissions refused with 503 (queue bound)
    completed: int             # images with a stored result (done or failed)
    quarantined: int
    requeued: int              # images returned to the queue after a worker died
    duplicates: int            # results computed again after being stored (kept once)
    batches: int
    batch_sizes: dict[int, int]
    max_size: int
    max_delay_s: float
    recent_batch: float        # mean size of the last 50 batches
    cap: int                   # the adaptive cap on the next batch's size
    cost_fixed_ms: float | None = None       # the cost line: ms per batch ...
    cost_per_image_ms: float | None = None   # ... plus ms per image in it
