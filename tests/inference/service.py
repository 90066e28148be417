"""Helpers the inference tests share (no tests here): start the service on a temporary data dir,
talk to it over HTTP, wait for its jobs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.inference.load import post_image, render_text
from actors.inference.store import JobStore
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.inference import GetQueueStats, QueueStats
from systems.inference import DISPATCHER, HTTP, SYSTEM, InferenceSettings
from systems.runtime import ActorRuntime

__all__ = ["Service", "render_text", "start_service"]


class Service:
    def __init__(self, rt: ActorRuntime, settings: InferenceSettings) -> None:
        self.rt = rt
        self.settings = settings
        info = rt.ask(HTTP, GetEdgeInfo(), 10)
        assert isinstance(info, EdgeInfo)
        self.url = f"http://{info.host}:{info.port}"
        self.store = JobStore(settings.resolved_storage_url("inference"))

    def stats(self) -> QueueStats:
        stats = self.rt.ask(DISPATCHER, GetQueueStats(), 10)
        assert isinstance(stats, QueueStats)
        return stats

    def wait_workers(self, count: int) -> QueueStats:
        return self.rt.wait_for(lambda: (lambda s: s if len(s.workers) >= count else None)(
            self.stats()), timeout_s=30, interval_s=0.05, what=f"{count} workers ready")

    def post(self, data: bytes, content_type: str = "image/png") -> tuple[int, dict[str, Any],
                                                                          dict[str, str]]:
        return post_image(self.url + "/predictions", data, content_type)

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_answered(self, job_ids: list[str], timeout_s: float = 30) -> dict[str, Any]:
        def answered() -> dict[str, Any] | None:
            views = {j: self.store.job(j) for j in job_ids}
            if all(v is not None and v.state in ("done", "failed", "quarantined")
                   for v in views.values()):
                return views
            return None
        return self.rt.wait_for(answered, timeout_s=timeout_s, interval_s=0.05,
                                what=f"{len(job_ids)} jobs answered")


def start_service(make_runtime: Callable[..., ActorRuntime], tmp_path: Path,
                  **overrides: Any) -> Service:
    values: dict[str, Any] = {"data_dir": str(tmp_path), "http_port": 0, "workers": 1}
    values.update(overrides)
    settings = SYSTEM.settings(overrides=values)
    assert isinstance(settings, InferenceSettings)
    rt = make_runtime(SYSTEM.tree(settings), base="multiproc", name="inference")
    service = Service(rt, settings)
    if settings.workers:
        service.wait_workers(settings.workers)
    return service
