"""Simulated clients, plain Python: render text images with Pillow, upload them, follow the jobs.

``render_text(text)`` makes a small PNG of one line of text (the test suite and the bench read it
back with the real model). ``MixedLoad`` is ``ptr run inference --simulate``: a thread that keeps
uploading a mix of fresh images, repeats (answered from the store) and the odd non-image (415),
and counts the answers.
"""

from __future__ import annotations

import io
import json
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["LoadStats", "MixedLoad", "post_image", "render_text"]

WORDS = ("ptr", "queue", "batch", "worker", "model", "image", "blob", "result", "onnx", "actor",
         "durable", "exactly", "once", "kill", "shed", "delay")


def render_text(text: str, size: tuple[int, int] = (288, 64), font_size: int = 28) -> bytes:
    """A white PNG with ``text`` in black: one short line the OCR model reads back.

    The font is the one inside Pillow (``ImageFont.load_default``), not a system font, so the
    same text makes the same image on any machine with the same Pillow. Words are drawn two
    spaces apart: at one space the recognizer joined some words (in 11 of 50 test lines at
    224x48, 22 px, 2 at 288x64, 28 px; none at 288x64 with two spaces; 2026-12-05)."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((8, (size[1] - font_size) // 2 - 2), text.replace(" ", "  "),
                               fill="black", font=ImageFont.load_default(size=font_size))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def post_image(url: str, data: bytes, content_type: str = "image/png",
               timeout_s: float = 30.0) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST ``data`` to ``url``: (status, JSON body, headers)."""
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


@dataclass
class LoadStats:
    sent: int = 0
    queued: int = 0
    cached: int = 0
    shed: int = 0
    rejected: int = 0
    answered: int = 0
    texts: list[str] = field(default_factory=list)


class MixedLoad:
    """A thread uploading ``per_s`` images a second to ``base_url``: mostly fresh text images,
    some repeats, one non-image in twenty; it polls its jobs and counts answers."""

    def __init__(self, base_url: str, per_s: float = 20.0, seed: int = 1) -> None:
        self.base_url = base_url.rstrip("/")
        self.per_s = per_s
        self.random = random.Random(seed)
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-load", daemon=True)
        self._open: list[str] = []
        self._sent_images: list[bytes] = []

    def start(self) -> MixedLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _next_body(self) -> tuple[bytes, str]:
        roll = self.random.random()
        if roll < 0.05:
            return b"this is not an image", "text/plain"
        if roll < 0.25 and self._sent_images:
            return self.random.choice(self._sent_images), "image/png"
        text = f"{self.random.choice(WORDS)} {self.random.randrange(1000)}"
        data = render_text(text)
        self._sent_images.append(data)
        return data, "image/png"

    def _run(self) -> None:
        interval = 1.0 / self.per_s
        while not self._stop.wait(interval):
            data, content_type = self._next_body()
            try:
                status, body, _ = post_image(self.base_url + "/predictions", data, content_type)
            except OSError:
                continue
            self.stats.sent += 1
            if status == 200 and body.get("cached"):
                self.stats.cached += 1
                self.stats.answered += 1
            elif status == 200:
                self.stats.queued += 1
                self._open.append(body["job_id"])
            elif status == 503:
                self.stats.shed += 1
            elif status == 415:
                self.stats.rejected += 1
            self._poll()

    def _poll(self) -> None:
        still = []
        for job_id in self._open[:20]:
            try:
                with urllib.request.urlopen(f"{self.base_url}/predictions/{job_id}",
                                            timeout=5) as response:
                    view = json.loads(response.read())
            except (OSError, ValueError):
                still.append(job_id)
                continue
            if view["state"] in ("done", "failed", "quarantined"):
                self.stats.answered += 1
                self.stats.texts = (self.stats.texts + [" ".join(
                    line["text"] for line in view["lines"])])[-5:]
            else:
                still.append(job_id)
        self._open = still + self._open[20:]
