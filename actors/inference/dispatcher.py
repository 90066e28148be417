"""The dispatcher: the one actor that owns the queue (a shell around ``work.WorkQueue``).

It answers the edge's submissions in batches (one durable log append per ``EdgeBatch``), hands
batches to idle workers by the batching rules, watches the workers' processes (a SIGKILL sends no
message: every ``liveness_s`` it checks the pids of the workers it knows) and moves the log's
committed offset as images are answered.

Failure rules: if the dispatcher itself crashes or is killed, its supervisor restarts it; the new
one replays the log from its committed offset (every job not yet answered waits again) and the
workers announce themselves again when they see its name come back. A batch a worker finishes
meanwhile is stored anyway (results are idempotent); the replayed copy of its images is answered
from the store without a second inference. An unavailable database or log refuses submissions
with 503 (``unavailable``) and leaves the dispatcher running.
"""

from __future__ import annotations

import os
from typing import Any

from actors.base import Actor
from actors.inference.batching import BatchPolicy
from actors.inference.model import model_version
from actors.inference.store import JobStore, open_queue
from actors.inference.work import WorkQueue
from protocols.edges import EdgeAnswers, EdgeBatch, Refusal
from protocols.errors import StorageError, UnavailableError
from protocols.inference import (
    BatchAbandoned,
    BatchDone,
    GetQueueStats,
    QueueStats,
    SetBatching,
    Submission,
    WorkerReady,
)
from protocols.message import ActorArgs
from protocols.supervision import ChildCounts, CountChildren, ExitReason, StartChildren

__all__ = ["Dispatcher", "DispatcherArgs", "process_alive"]


class DispatcherArgs(ActorArgs):
    queue_url: str
    storage_url: str
    max_batch: int = 8
    max_delay_s: float = 0.02
    adaptive: bool = True
    queue_bound: int = 1000
    liveness_s: float = 0.02
    pool: str = ""          # the workers' simple_one_for_one supervisor, by registered name
    pool_size: int = 0      # how many workers it should run (started here when fewer run)


class CheckWorkers:
    """Timer message: look at the workers' processes."""


class PumpTick:
    """Timer message: a held batch's delay ran out."""


def process_alive(pid: int) -> bool:
    """False once the process is gone or a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


class Dispatcher(Actor):
    """See the module docstring. Args: ``DispatcherArgs``."""

    Args = DispatcherArgs

    def on_start(self) -> None:
        args: DispatcherArgs = self.typed_args()
        self.store = JobStore(args.storage_url)
        self.log = open_queue(args.queue_url)
        policy = BatchPolicy(args.max_batch, args.max_delay_s, adaptive=args.adaptive)
        self.queue = WorkQueue(self.log, self.store, model_version(), policy, args.queue_bound)
        self.queue.recover(self.clock())
        self.addresses: dict[int, Any] = {}
        self.pump_timer: int | None = None
        self.start_timer(args.liveness_s, CheckWorkers(), repeat=True)
        if args.pool and args.pool_size:
            pool = self.peer(args.pool)
            pool.request(CountChildren(), lambda counts: self.fill_pool(counts, args.pool_size),
                         timeout_s=10, on_unavailable=self.pool_unavailable)

    def fill_pool(self, counts: Any, size: int) -> None:
        """Start the workers the pool lacks (all of them at the system's start; none after a
        restart of the dispatcher alone)."""
        assert isinstance(counts, ChildCounts)
        missing = size - counts.active
        if missing > 0:
            self.peer(self.typed_args().pool).request(StartChildren(count=missing),
                                                      lambda _reply: None, timeout_s=60,
                                                      on_unavailable=self.pool_unavailable)

    def pool_unavailable(self) -> None:
        """The workers' supervisor did not answer: crash, and let the supervisor start again."""
        raise UnavailableError(f"the worker pool {self.typed_args().pool!r} did not answer")

    def on_stop(self, reason: ExitReason) -> None:
        for closable in (getattr(self, "log", None), getattr(self, "store", None)):
            if closable is not None:
                closable.close()

    def receiveMsg_EdgeBatch(self, msg: EdgeBatch, sender: Any) -> EdgeAnswers:
        submissions = [Submission(**item.body) if isinstance(item.body, dict) else item.body
                       for item in msg.items]
        try:
            answers: list[Any] = list(self.queue.submit(submissions, self.clock()))
        except StorageError as exc:
            answers = [Refusal.unavailable(f"the queue is out: {exc}") for _ in submissions]
        self.pump()
        return EdgeAnswers(answers=answers)

    def receiveMsg_WorkerReady(self, msg: WorkerReady, sender: Any) -> None:
        self.addresses[msg.pid] = sender
        self.queue.worker_ready(msg.worker_id, msg.pid, self.clock())
        self.forget_gone()
        self.pump()

    def receiveMsg_BatchDone(self, msg: BatchDone, sender: Any) -> None:
        self.queue.finished(msg.pid, msg.batch_id, msg.done, msg.failed, msg.duplicates,
                            self.clock(), msg.infer_ms / 1000)
        self.pump()

    def receiveMsg_BatchAbandoned(self, msg: BatchAbandoned, sender: Any) -> None:
        self.queue.lost(msg.pid, msg.reason, self.clock())
        self.addresses.pop(msg.pid, None)
        self.pump()

    def receiveMsg_CheckWorkers(self, msg: CheckWorkers, sender: Any) -> None:
        if sender == self.myAddress:
            gone = [pid for pid in self.queue.workers if not process_alive(pid)]
            for pid in gone:
                slot = self.queue.workers[pid]
                self.queue.lost(pid, f"worker {slot.worker_id} (pid {pid}) died while running "
                                     f"a batch of {len(slot.works)}", self.clock())
                self.addresses.pop(pid, None)
            if gone:
                self.pump()

    def receiveMsg_PumpTick(self, msg: PumpTick, sender: Any) -> None:
        if sender == self.myAddress:
            self.pump_timer = None
            self.pump()

    def receiveMsg_SetBatching(self, msg: SetBatching, sender: Any) -> QueueStats:
        fresh = BatchPolicy(msg.max_size, msg.max_delay_s, adaptive=msg.adaptive)
        fresh.learned_from(self.queue.policy)   # new rules; the workers' timings still hold
        self.queue.policy = fresh
        return self.receiveMsg_GetQueueStats(GetQueueStats(), sender)

    def receiveMsg_GetQueueStats(self, msg: GetQueueStats, sender: Any) -> QueueStats:
        q = self.queue
        line = q.policy.cost_line()
        return QueueStats(cap=q.policy.cap(),
                          cost_fixed_ms=None if line is None else round(line[0] * 1000, 2),
                          cost_per_image_ms=None if line is None else round(line[1] * 1000, 2),
                          depth=q.depth, in_flight=q.in_flight, workers=q.worker_stats(),
                          batch_sizes=dict(q.batch_sizes), max_size=q.policy.max_size,
                          max_delay_s=q.policy.max_delay_s, recent_batch=q.recent_batch(),
                          **q.stats)

    def forget_gone(self) -> None:
        for pid in [p for p in self.addresses if p not in self.queue.workers]:
            del self.addresses[pid]

    def pump(self) -> None:
        sends, wait = self.queue.pump(self.clock())
        for pid, batch in sends:
            self.send(self.addresses[pid], batch)
        if wait is not None and self.pump_timer is None:
            self.pump_timer = self.start_timer(wait, PumpTick())
