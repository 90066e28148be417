"""``ptr run SYSTEM --observe`` in a subprocess, as a user starts it, with its URLs read from its
output; always stopped (and its processes proven gone) at the end of the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from systems.processes import processes_in_sessions

PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]


class ObservedRun:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run"), "XDG_RUNTIME_DIR": ""}
        self.proc = subprocess.Popen([*PTR, "run", *args, "--observe"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        header = self.proc.stdout.readline()
        assert "running on multiproc" in header, self.proc.stderr.read()  # type: ignore[union-attr]
        self.sid = os.getsid(int(header.split("root pid ")[1].rstrip(")\n")))
        self.url = self.metrics_url = ""
        for line in self.proc.stdout:
            if line.startswith("observer: "):
                self.url = line.split(" ", 1)[1].strip()
            if line.startswith("metrics: "):
                self.metrics_url = line.split(" ", 1)[1].strip()
                break
        assert self.url and self.metrics_url

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=10) as response:
            return bytes(response.read())

    def snapshot(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/api/snapshot")))

    def actors(self) -> dict[str, dict[str, Any]]:
        return {a["path"]: a for a in self.snapshot().get("actors", [])}  # {} before the first

    def post_fault(self, headers: dict[str, str] | None = None,
                   **body: Any) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.url.rstrip("/") + "/api/faults",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return out, err

    def close(self) -> None:
        if self.proc.poll() is None:  # a clean stop first: the tree stops in order
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate(timeout=30)
        for pid in processes_in_sessions({self.sid}):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.1)  # polling another process over HTTP: no event to wait on


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[Callable[..., ObservedRun]]:
    runs: list[ObservedRun] = []

    def start(*args: str) -> ObservedRun:
        runs.append(ObservedRun(tmp_path, *args))
        return runs[-1]

    yield start
    for run in runs:
        run.close()
