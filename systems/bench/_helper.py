"""A benchmark's helper process: ``python -m MODULE ROLE ...`` (a load generator, a bare baseline),
one JSON line on stdout, killed on exit whatever happened. Not multiprocessing: its spawn start
method would re-run the caller's script."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any


class BenchHelper:
    def __init__(self, module: str, *argv: Any) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
        self.process = subprocess.Popen([sys.executable, "-m", module, *map(str, argv)],
                                        cwd=root, env=env, stdout=subprocess.PIPE, text=True)

    def line(self, timeout_s: float) -> dict[str, Any]:
        """The helper's JSON line; raises TimeoutError if it does not come in time."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        text = self.process.stdout.readline() if ready else ""
        if not text:
            raise TimeoutError(f"bench helper {self.process.args[2:]} said nothing in {timeout_s} s")
        return dict(json.loads(text))

    def __enter__(self) -> BenchHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
