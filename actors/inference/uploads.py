"""Uploads and result streams on the HTTP edge's loop, plain asyncio (no Thespian).

``receive_image`` streams a request body (raw, or the first file part of a multipart form) into
the blob store chunk by chunk, hashing as it writes: the image never sits whole in memory and never
travels between actors (they get its link). Over ``max_bytes`` it stops reading and refuses
``too_large`` (413); content whose first bytes are no accepted image format, or that Pillow cannot
open, is refused ``unsupported`` (415); an empty body is ``invalid`` (400).

``result_events`` writes a job's states as server-sent events until it is answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from PIL import Image

from actors.storage import BlobStore
from protocols.errors import InvalidMessageError, RefusalKind, RefusedError
from protocols.inference import FINAL_STATES, JobView, Submission

__all__ = ["image_type", "receive_image", "result_events"]

CHUNK = 1 << 16
SNIFF = 32
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"),
)


def image_type(head: bytes) -> str | None:
    """The media type the first bytes announce, or None when they are no accepted image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    return None


def _unsupported(why: str) -> RefusedError:
    return RefusedError(why, refusal=RefusalKind.UNSUPPORTED,
                        accepted=["image/png", "image/jpeg", "image/gif", "image/bmp",
                                  "image/tiff", "image/webp"])


def _too_large(max_bytes: int) -> RefusedError:
    return RefusedError("image too large", refusal=RefusalKind.TOO_LARGE, max_bytes=max_bytes)


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The raw body, or the first part with a file name (or named ``image``) of a multipart form."""
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise InvalidMessageError("the form has no image part", kind="upload")
            if isinstance(part, BodyPartReader) and (part.filename or part.name == "image"):
                while chunk := await part.read_chunk(CHUNK):
                    yield chunk
                return
            if isinstance(part, BodyPartReader):
                await part.release()
    else:
        async for chunk in request.content.iter_chunked(CHUNK):
            yield chunk


async def receive_image(request: web.Request, blobs: BlobStore, max_bytes: int) -> Submission:
    """Stream the upload into ``blobs``; the submission naming its link. Raises RefusedError
    (413, 415) or InvalidMessageError (400); a partial file is always removed."""
    if request.content_length is not None and request.content_length > max_bytes + (
            64 << 10 if request.content_type.startswith("multipart/") else 0):
        raise _too_large(max_bytes)
    hasher = hashlib.sha256()
    size = 0
    head = b""
    temp, path = blobs.temp_file()
    adopted = False
    try:
        with temp:
            async for chunk in _body_chunks(request):
                if size == 0 or len(head) < SNIFF:
                    head = (head + chunk)[:SNIFF]
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                hasher.update(chunk)
                temp.write(chunk)
        if size == 0:
            raise InvalidMessageError("the body is empty: send an image", kind="upload")
        media_type = image_type(head)
        if media_type is None:
            raise _unsupported("the content is not an image (PNG, JPEG, GIF, BMP, TIFF, WebP)")
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, _opens, path):
            raise _unsupported(f"the {media_type} content does not open as an image")
        link = await loop.run_in_executor(None, blobs.adopt, path, hasher.hexdigest())
        adopted = True
    finally:
        if not adopted:
            path.unlink(missing_ok=True)
    return Submission(link=link, image_hash=hasher.hexdigest(), size=size, media_type=media_type)


def _opens(path: Any) -> bool:
    """Pillow reads the header (not the pixels): size and mode must make sense. How many pixels
    a worker will decode is the workers' rule (``max_pixels``), not the edge's."""
    try:
        with Image.open(path) as image:
            return image.width > 0 and image.height > 0
    except Image.DecompressionBombError:
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def _event(name: str, payload: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def result_events(request: web.Request, job: Callable[[], JobView | None],
                        timeout_s: float, poll_s: float) -> web.StreamResponse:
    """Server-sent events for one job: ``state`` when it changes, then ``result`` with the whole
    view once it is done, failed or quarantined (or ``timeout`` after ``timeout_s``); then the
    stream ends. ``job()`` reads the store (run in the loop's executor). Unknown job: 404."""
    loop = asyncio.get_running_loop()
    view = await loop.run_in_executor(None, job)
    if view is None:
        raise RefusedError("no such job", refusal=RefusalKind.NOT_FOUND)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    deadline = loop.time() + timeout_s
    last = ""
    while view is not None:
        if view.state != last:
            last = view.state
            await response.write(_event("state", {"job_id": view.job_id, "state": view.state}))
        if view.state in FINAL_STATES:
            await response.write(_event("result", view.model_dump()))
            break
        if loop.time() >= deadline:
            await response.write(_event("timeout", {"job_id": view.job_id,
                                                    "timeout_s": timeout_s}))
            break
        await asyncio.sleep(poll_s)
        view = await loop.run_in_executor(None, job)
    await response.write_eof()
    return response
