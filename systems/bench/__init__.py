"""Benchmarks behind ``ptr bench NAME``: each measures ptr beside a bare baseline in the same run.

Each module has ``run(args) -> dict``; the CLI prints the dict as JSON.
"""

from systems.bench.registry import BENCHMARKS

__all__ = ["BENCHMARKS"]
