"""The ML prediction service's actors (System 6). Read ``edge`` first (how an image enters: streamed
into the blob store, its link queued), then ``dispatcher`` (the durable queue and the batching)
and ``worker`` (the model on a batch); ``work``, ``batching``, ``store``, ``model`` and
``uploads`` are the plain objects they wrap, ``load`` the simulated clients.

Actor classes are imported from their modules (they are Thespian actors); the plain parts are here.
"""

from actors.inference.batching import BatchPolicy
from actors.inference.model import ImageDecodeError, OcrLine, OcrModel, model_version
from actors.inference.store import JobStore, open_queue
from actors.inference.work import QUARANTINE_AFTER, WorkQueue

__all__ = ["QUARANTINE_AFTER", "BatchPolicy", "ImageDecodeError", "JobStore", "OcrLine",
           "OcrModel", "WorkQueue", "model_version", "open_queue"]
