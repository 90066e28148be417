"""The dispatcher's core, plain Python: the durable queue, the work waiting per image, the workers
and their batches, crash accounting and the quarantine. The ``Dispatcher`` actor is a shell
around it (it sends what ``pump`` returns and feeds it messages and the clock).

Rules:

* **Acknowledged means durable.** ``submit`` appends the batch's jobs to the log (one append,
  synced) before any is answered ``queued``; a job whose image already has a stored result (same
  hash, same model version) is answered from it and never queued.
* **One inference per image.** Jobs of the same image share one ``Work``; its result answers all.
* **Shedding.** Past ``queue_bound`` images waiting, submissions are refused ``unavailable`` with
  a ``retry_after_s`` estimated from the recent completion rate.
* **A worker that dies mid-batch** (its process gone, or its ``BatchAbandoned``) returns only
  that batch's images that have no stored result, to the front of the queue, each with one more
  crash; an image with a crash is a suspect and runs alone. A suspect that crashes a worker again
  (two crashes) goes to the quarantine with the reasons, and its jobs are answered so.
* **The log's committed offset** moves past a job once its image is answered, so a restarted
  dispatcher replays exactly the jobs still open (``recover``).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from actors.inference.batching import BatchPolicy
from actors.inference.store import QUEUE_GROUP, QUEUE_TOPIC, JobStore
from actors.storage import DurableLog
from protocols.edges import Refusal
from protocols.inference import JobAccepted, Submission, WorkBatch, WorkerStat, WorkItem

__all__ = ["QUARANTINE_AFTER", "Work", "WorkQueue"]

QUARANTINE_AFTER = 2   # crashes of a worker while running an image


@dataclass
class Work:
    """One image to infer and the log offsets of the jobs waiting for it."""

    image_hash: str
    link: str
    enqueued_at: float
    offsets: list[int] = field(default_factory=list)
    crashes: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class Slot:
    """A worker the dispatcher knows: its batch in flight, if any."""

    worker_id: str
    pid: int
    batch_id: int = 0
    works: list[Work] = field(default_factory=list)
    batches: int = 0
    items: int = 0


class WorkQueue:
    """Not thread-safe; one per dispatcher. ``log`` and ``store`` are owned by the caller."""

    def __init__(self, log: DurableLog, store: JobStore, model_version: str, policy: BatchPolicy,
                 queue_bound: int) -> None:
        self.log = log
        self.store = store
        self.model_version = model_version
        self.policy = policy
        self.queue_bound = queue_bound
        self.pending: deque[Work] = deque()
        self.works: dict[str, Work] = {}          # every image not yet answered, by hash
        self.workers: dict[int, Slot] = {}        # by pid
        self.open_offsets: set[int] = set()
        self.committed = 0
        self.seen_end = 0
        self.next_batch = 1
        self.completed_times: deque[float] = deque(maxlen=200)
        self.recent_sizes: deque[int] = deque(maxlen=50)
        self.stats = {"accepted": 0, "deduplicated": 0, "shed": 0, "completed": 0,
                      "quarantined": 0, "requeued": 0, "duplicates": 0, "batches": 0}
        self.batch_sizes: dict[int, int] = {}

    # --- the queue ------------------------------------------------------------------------------

    def recover(self, now: float) -> int:
        """Replay the log from its committed offset: every job still open waits again (its row
        added if the dispatcher died between the append and the row). Returns the images queued."""
        self.committed = self.log.committed(QUEUE_GROUP, QUEUE_TOPIC)
        self.seen_end = self.committed
        offset = self.committed + 1
        while True:
            entries = self.log.read(QUEUE_TOPIC, offset, 1000)
            if not entries:
                break
            jobs = [(entry.offset, json.loads(entry.payload)) for entry in entries]
            self.store.add_jobs([_job_row(job, cached=False) for _, job in jobs])
            answered = self.store.answered({job["image_hash"] for _, job in jobs},
                                           self.model_version)
            for entry_offset, job in jobs:
                if job["image_hash"] not in answered:
                    self._enqueue(job["image_hash"], job["link"], entry_offset, now)
            offset = entries[-1].offset + 1
            self.seen_end = entries[-1].offset
        self._advance_commit()
        return len(self.pending)

    def submit(self, submissions: list[Submission], now: float) -> list[JobAccepted | Refusal]:
        """Answer each submission: queued (durably), cached, or refused (shed)."""
        answered = self.store.answered([s.image_hash for s in submissions], self.model_version)
        answers: list[JobAccepted | Refusal | None] = []
        cached_rows: list[dict[str, Any]] = []
        queued: list[tuple[int, dict[str, Any]]] = []
        room = self.queue_bound - len(self.pending)
        for index, submission in enumerate(submissions):
            job: dict[str, Any] = {"job_id": _new_job_id(), "image_hash": submission.image_hash,
                   "link": submission.link, "model_version": self.model_version,
                   "submitted_at": time.time()}
            if submission.image_hash in answered:
                cached_rows.append(_job_row(job, cached=True))
                answers.append(self._accepted(job, "done", cached=True))
                self.stats["deduplicated"] += 1
            elif submission.image_hash not in self.works and room <= 0:
                answers.append(Refusal(reason="unavailable", error="the queue is full",
                                       retry_after_s=self.retry_after_s(now)))
                self.stats["shed"] += 1
            else:
                if submission.image_hash not in self.works:
                    room -= 1
                queued.append((index, job))
                answers.append(None)
        self.store.add_jobs(cached_rows)
        if queued:
            payloads = [json.dumps(job, separators=(",", ":")).encode() for _, job in queued]
            offsets = self.log.append(QUEUE_TOPIC, payloads)   # durable before anyone is told
            self.store.add_jobs([_job_row(job, cached=False) for _, job in queued])
            fresh = 0
            for (index, job), offset in zip(queued, offsets):
                if job["image_hash"] in self.works:
                    self.stats["deduplicated"] += 1
                else:
                    fresh += 1
                self._enqueue(job["image_hash"], job["link"], offset, now)
                self.seen_end = max(self.seen_end, offset)
                answers[index] = self._accepted(job, "queued")
                self.stats["accepted"] += 1
            self.policy.arrived(fresh, now)
        return [answer for answer in answers if answer is not None]

    def _accepted(self, job: dict[str, Any], state: str, cached: bool = False) -> JobAccepted:
        return JobAccepted(job_id=job["job_id"], state=state,  # type: ignore[arg-type]
                           image_hash=job["image_hash"], model_version=self.model_version,
                           cached=cached)

    def _enqueue(self, image_hash: str, link: str, offset: int, now: float) -> None:
        work = self.works.get(image_hash)
        if work is None:
            work = self.works[image_hash] = Work(image_hash, link, now)
            self.pending.append(work)
        work.offsets.append(offset)
        self.open_offsets.add(offset)

    def retry_after_s(self, now: float) -> float:
        """How long the queue needs to drain at the recent completion rate (1 s to 60 s)."""
        recent = [t for t in self.completed_times if t > now - 10.0]
        rate = len(recent) / 10.0
        if rate <= 0:
            return 5.0
        return min(60.0, max(1.0, len(self.pending) / rate))

    @property
    def depth(self) -> int:
        return len(self.pending)

    @property
    def in_flight(self) -> int:
        return sum(len(slot.works) for slot in self.workers.values())

    # --- workers --------------------------------------------------------------------------------

    def worker_ready(self, worker_id: str, pid: int, now: float) -> list[Work]:
        """A worker (re)started. A worker id seen before under another pid died: its batch is
        lost (returned: the caller passes it to ``lost``)."""
        orphaned = [p for p, slot in self.workers.items() if slot.worker_id == worker_id
                    and p != pid]
        for old in orphaned:
            self.lost(old, "worker restarted (its process died)", now)
        self.workers.setdefault(pid, Slot(worker_id, pid))
        return []

    def pump(self, now: float) -> tuple[list[tuple[int, WorkBatch]], float | None]:
        """Batches to send now, as (worker pid, batch), and when to call again (None: when
        something arrives or a worker frees)."""
        sends: list[tuple[int, WorkBatch]] = []
        idle = [slot for slot in self.workers.values() if not slot.works]
        while idle and self.pending:
            if self.pending[0].crashes:        # a suspect runs alone
                works = [self.pending.popleft()]
            else:
                wait = self.policy.wait_s(self._plain_pending(), now - self.pending[0].enqueued_at,
                                          now)
                if wait > 0:
                    return sends, wait
                works = []
                cap = self.policy.cap()
                while self.pending and len(works) < cap and not self.pending[0].crashes:
                    works.append(self.pending.popleft())
                self.policy.sent(len(works))
            slot = idle.pop(0)
            sends.append((slot.pid, self._assign(slot, works)))
        return sends, None

    def _plain_pending(self) -> int:
        count = 0
        for work in self.pending:
            if work.crashes:
                break
            count += 1
            if count >= self.policy.max_size:
                break
        return count

    def _assign(self, slot: Slot, works: list[Work]) -> WorkBatch:
        slot.batch_id = self.next_batch
        self.next_batch += 1
        slot.works = works
        slot.batches += 1
        slot.items += len(works)
        self.stats["batches"] += 1
        self.batch_sizes[len(works)] = self.batch_sizes.get(len(works), 0) + 1
        self.recent_sizes.append(len(works))
        return WorkBatch(batch_id=slot.batch_id, model_version=self.model_version,
                         items=[WorkItem(image_hash=w.image_hash, link=w.link, solo=w.crashes > 0)
                                for w in works])

    def finished(self, pid: int, batch_id: int, done: list[str], failed: dict[str, str],
                 duplicates: int, now: float, seconds: float = 0.0) -> None:
        """A worker committed its batch's results (in ``seconds``, for the cost model)."""
        slot = self.workers.get(pid)
        if slot is None or slot.batch_id != batch_id:
            return   # a batch already written off as lost: its results are stored anyway
        if not any(work.crashes for work in slot.works):
            self.policy.observed(len(slot.works), seconds)
        self.stats["duplicates"] += duplicates
        answered = set(done) | set(failed)
        left = [work for work in slot.works if work.image_hash not in answered]
        for work in slot.works:
            if work.image_hash in answered:
                self._answered(work, now)
        slot.works, slot.batch_id = [], 0
        if left:   # the worker skipped some (should not happen): they wait again
            self.pending.extendleft(reversed(left))
        self._advance_commit()

    def lost(self, pid: int, reason: str, now: float) -> list[Work]:
        """The worker ``pid`` is gone: its batch's images without a stored result go back to the
        front of the queue with one more crash, or to the quarantine at the second. Returns the
        images quarantined."""
        slot = self.workers.pop(pid, None)
        if slot is None or not slot.works:
            return []
        stored = self.store.answered([w.image_hash for w in slot.works], self.model_version)
        back: list[Work] = []
        quarantined: list[Work] = []
        for work in slot.works:
            if work.image_hash in stored:
                self._answered(work, now)
                continue
            work.crashes += 1
            work.reasons.append(reason)
            if work.crashes >= QUARANTINE_AFTER:
                self.store.quarantine(work.image_hash, self.model_version,
                                      "; ".join(work.reasons), work.crashes)
                self._answered(work, now, completed=False)
                self.stats["quarantined"] += 1
                quarantined.append(work)
            else:
                back.append(work)
                self.stats["requeued"] += 1
        self.pending.extendleft(reversed(back))
        self._advance_commit()
        return quarantined

    def _answered(self, work: Work, now: float, completed: bool = True) -> None:
        if self.works.pop(work.image_hash, None) is None:
            return
        self.open_offsets.difference_update(work.offsets)
        if completed:
            self.stats["completed"] += 1
            self.completed_times.append(now)

    def _advance_commit(self) -> None:
        target = (min(self.open_offsets) - 1) if self.open_offsets else self.seen_end
        if target > self.committed:
            self.log.commit(QUEUE_GROUP, QUEUE_TOPIC, target)
            self.committed = target

    def running(self) -> set[str]:
        """Hashes in workers' batches now."""
        return {w.image_hash for slot in self.workers.values() for w in slot.works}

    def worker_stats(self) -> list[WorkerStat]:
        return [WorkerStat(worker_id=s.worker_id, pid=s.pid, busy=bool(s.works),
                           batch_size=len(s.works), batches=s.batches, items=s.items)
                for s in sorted(self.workers.values(), key=lambda s: s.worker_id)]

    def recent_batch(self) -> float:
        sizes = self.recent_sizes
        return sum(sizes) / len(sizes) if sizes else 0.0


def _new_job_id() -> str:
    import uuid
    return uuid.uuid4().hex


def _job_row(job: dict[str, Any], cached: bool) -> dict[str, Any]:
    return {"job_id": job["job_id"], "image_hash": job["image_hash"],
            "model_version": job["model_version"], "cached": cached,
            "submitted_at": job["submitted_at"]}
