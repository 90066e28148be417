"""Shared fixtures: actor runtimes that always stop, and proof that no OS process is left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from systems.runtime import ActorRuntime
from systems.processes import orphaned_python_processes


@pytest.fixture(autouse=True)
def no_orphaned_processes() -> Iterator[None]:
    """Every test: no Python process re-parented to init may appear (Thespian's admin does so)."""
    before = set(orphaned_python_processes(b"pytest"))
    yield
    deadline = time.monotonic() + 10
    while True:
        new = set(orphaned_python_processes(b"pytest")) - before
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling the OS process table; nothing to wait on
    assert not new, f"processes left behind by this test: {sorted(new)}"


@pytest.fixture
def make_runtime(ptr_runtime: Callable[..., ActorRuntime]) -> Callable[..., ActorRuntime]:
    """ptr's own ``ptr_runtime`` fixture (systems/testing.py): stops every runtime, proves it."""
    return ptr_runtime


@pytest.fixture(params=["simple", "multiproc"])
def base(request: pytest.FixtureRequest) -> str:
    if request.param == "multiproc":
        request.applymarker(pytest.mark.multiproc)
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    os.environ.setdefault("PTR_NODE", "test")
