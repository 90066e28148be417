"""The prediction API: the kit's HTTP edge with three routes (and its ``/openapi.json``).

* ``POST /predictions``: the body (raw, or a multipart form's file) is streamed into the blob
  store (``uploads.receive_image``: 413 past ``max_upload_bytes``, 415 for what is not an image),
  then its link goes to the dispatcher through the edge's bridge, which answers once the job is
  durably queued (or answered from a stored result): 200 with a ``JobAccepted``. A full queue
  is 503 with ``Retry-After``.
* ``GET /predictions/{job_id}``: the job's state and text, read from the results database.
* ``GET /predictions/{job_id}/events``: server-sent events until the job is answered.

The two reads run on the edge's loop (the database in its executor) and never reach an actor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic_core
from aiohttp import web
from pydantic import Field

from actors.edges import Answer, Inbound, Route
from actors.edges.http_edge import HttpEdgeActor, HttpEdgeArgs
from actors.inference.store import JobStore
from actors.inference.uploads import receive_image, result_events
from actors.storage import BlobStore
from protocols.errors import RefusalKind, RefusedError
from protocols.inference import EventParams, JobAccepted, JobParams, JobView
from protocols.supervision import ExitReason

__all__ = ["PredictionEdge", "PredictionEdgeArgs", "prediction_routes"]

SUBMIT = "submit"


class PredictionEdgeArgs(HttpEdgeArgs):
    """The HTTP edge's arguments (``target``: the dispatcher's name) and the upload's own."""

    target: str
    blob_dir: str
    storage_url: str
    max_upload_bytes: int = Field(default=50 << 20, ge=1)
    events_poll_s: float = Field(default=0.05, gt=0)
    max_in_flight: int = Field(default=512, ge=1)
    title: str | None = "ptr inference"


class PredictionEdge(HttpEdgeActor):
    """The HTTP edge plus the blob store and a read-only handle on the results database.

    Args (``PredictionEdgeArgs``): the edge's own (``routes``, ``target``: the dispatcher's name,
    ``host``, ``port``...) and ``blob_dir``, ``storage_url``, ``max_upload_bytes``,
    ``events_poll_s``. Restarts like any edge; an upload cut off by a crash leaves no blob.
    """

    Args = PredictionEdgeArgs

    def on_start(self) -> None:
        args: PredictionEdgeArgs = self.typed_args()
        self.blobs = BlobStore(args.blob_dir)
        self.jobs = JobStore(args.storage_url)
        self.max_upload_bytes = args.max_upload_bytes
        self.events_poll_s = args.events_poll_s
        super().on_start()

    def on_stop(self, reason: ExitReason) -> None:
        try:
            super().on_stop(reason)
        finally:
            jobs = getattr(self, "jobs", None)
            if jobs is not None:
                jobs.close()


async def submit_image(host: PredictionEdge, request: web.Request, params: Any) -> web.Response:
    submission = await receive_image(request, host.blobs, host.max_upload_bytes)
    assert host.bridge is not None
    answer = await host.bridge.submit(Inbound(SUBMIT, submission, request.remote or ""))
    return web.Response(body=pydantic_core.to_json(answer), content_type="application/json")


async def job_view(host: PredictionEdge, inbound: Inbound) -> JobView:
    loop = asyncio.get_running_loop()
    view = await loop.run_in_executor(None, host.jobs.job, inbound.params.job_id)
    if view is None:
        raise RefusedError("no such job", refusal=RefusalKind.NOT_FOUND)
    return view


async def job_events(host: PredictionEdge, request: web.Request,
                     params: EventParams) -> web.StreamResponse:
    return await result_events(request, lambda: host.jobs.job(params.job_id), params.timeout_s,
                               host.events_poll_s)


def prediction_routes() -> list[Route]:
    return [
        Route("POST", "/predictions", answer=Answer.REPLY, name=SUBMIT, timeout_s=30,
              response=JobAccepted, stream_handler=submit_image,
              body_media_type="application/octet-stream",
              refuses=(RefusalKind.INVALID, RefusalKind.UNSUPPORTED),
              summary="upload an image (raw body or multipart form); answered once the job is "
                      "durably queued, or at once from a stored result"),
        Route("GET", "/predictions/{job_id}", answer=Answer.REPLY, name="job", params=JobParams,
              response=JobView, loop_handler=job_view, summary="a job's state and text"),
        Route("GET", "/predictions/{job_id}/events", answer=Answer.REPLY, name="events",
              params=EventParams, stream_handler=job_events, media_type="text/event-stream",
              timeout_s=600, summary="server-sent events: state changes, then the result"),
    ]
