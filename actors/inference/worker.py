"""An inference worker: one process, the model loaded once, one batch at a time.

On start (and after every restart) it loads the model and tells the dispatcher ``WorkerReady``
with its pid; it announces itself again whenever the dispatcher's name comes back after going
down. A ``WorkBatch`` is read from the blob store by link, decoded (Pillow), run through the model
as one batch, and its results committed in ONE transaction keyed by (image hash, model version),
then ``BatchDone`` goes back. Images already answered (a replayed batch) are skipped.

Failure rules: bytes that do not decode are a stored ``failed`` result, not a crash. Anything else
(a decompression bomb past ``max_pixels``, a model error, a lost database) crashes the worker: it
tells the dispatcher ``BatchAbandoned`` with the reason from ``on_stop`` and its supervisor
restarts it. A SIGKILL sends nothing: the dispatcher sees the process gone.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from PIL import Image

from actors.base import Actor
from actors.inference.model import ImageDecodeError, OcrModel, decode
from actors.inference.store import JobStore, result_row
from actors.storage import BlobStore
from protocols.errors import BlobNotFoundError
from protocols.inference import BatchAbandoned, BatchDone, TextLine, WorkBatch, WorkerReady
from protocols.message import ActorArgs
from protocols.supervision import ExitKind, ExitReason

__all__ = ["InferenceWorker", "WorkerArgs"]


class WorkerArgs(ActorArgs):
    dispatcher: str
    storage_url: str
    blob_dir: str
    threads: int = 1
    det_max_side: int = 640
    rec_batch: int = 1
    max_pixels: int = 40_000_000


class InferenceWorker(Actor):
    """See the module docstring. Args: ``WorkerArgs``."""

    Args = WorkerArgs

    def on_start(self) -> None:
        args: WorkerArgs = self.typed_args()
        Image.MAX_IMAGE_PIXELS = args.max_pixels
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        self.model = OcrModel(threads=args.threads, det_max_side=args.det_max_side,
                              rec_batch=args.rec_batch)
        self.store = JobStore(args.storage_url)
        self.blobs = BlobStore(args.blob_dir)
        self.batch: WorkBatch | None = None
        self.pid = os.getpid()
        self.dispatcher = self.peer(args.dispatcher, on_down=lambda _address: self.announce())
        self.announce()

    def announce(self) -> None:
        self.dispatcher.send(WorkerReady(worker_id=self.child_id or self.path, pid=self.pid))

    def on_stop(self, reason: ExitReason) -> None:
        if getattr(self, "batch", None) is not None and reason.exit_kind is ExitKind.ERROR:
            assert self.batch is not None
            self.dispatcher.send(BatchAbandoned(batch_id=self.batch.batch_id, pid=self.pid,
                                                reason=f"{reason.error_type}: {reason.text}"))
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    def receiveMsg_WorkBatch(self, batch: WorkBatch, sender: Any) -> None:
        self.batch = batch
        started = time.perf_counter()
        version = batch.model_version
        stored = self.store.answered([item.image_hash for item in batch.items], version)
        todo = [item for item in batch.items if item.image_hash not in stored]
        images: list[Image.Image] = []
        decoded: list[str] = []
        failed: dict[str, str] = {}
        for item in todo:
            try:
                images.append(decode(self.blobs.get(item.link)))
                decoded.append(item.image_hash)
            except ImageDecodeError as exc:
                failed[item.image_hash] = str(exc)
            except BlobNotFoundError:
                failed[item.image_hash] = f"the image {item.link} is not in the blob store"
        lines = self.model.predict(images) if images else []
        if version != self.model.version:
            raise RuntimeError(f"asked for model {version}, running {self.model.version}")
        size = len(batch.items)
        rows = [result_row(h, version, [TextLine(text=l.text, score=round(l.score, 4),
                                                 box=list(l.box)) for l in found],
                           batch_size=size, worker_pid=self.pid)
                for h, found in zip(decoded, lines)]
        rows += [result_row(h, version, [], error=why, batch_size=size, worker_pid=self.pid)
                 for h, why in failed.items()]
        inserted = self.store.commit_results(rows)
        self.batch = None
        self.send(sender, BatchDone(batch_id=batch.batch_id, pid=self.pid,
                                    done=[*stored, *decoded], failed=failed,
                                    duplicates=len(rows) - inserted,
                                    infer_ms=(time.perf_counter() - started) * 1000))
