"""ptr's pytest plugin (entry point ``pytest11: ptr``): runtimes that always stop and prove it, and
the chaos API as a fixture, so a project's tests inject faults as ``ptr chaos`` does.

    def test_survives(ptr_runtime, chaos):
        rt = ptr_runtime(my_tree, base="multiproc")
        chaos(rt).kill("/root/worker")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from systems.chaos import Chaos
from systems.runtime import ActorRuntime

TEARDOWN_SHUTDOWN_S = 60.0  # the most a test's system may take to stop before it is killed


@pytest.fixture
def ptr_runtime() -> Iterator[Callable[..., ActorRuntime]]:
    """Start runtimes; at teardown each is shut down and must leave no process in its session."""
    started: list[ActorRuntime] = []

    def make(spec: Any, **kwargs: Any) -> ActorRuntime:
        runtime = ActorRuntime(spec, **kwargs)
        started.append(runtime)
        return runtime.start()

    yield make
    for runtime in started:  # bounded: a tree that cannot stop fails its test, not the suite
        runtime.shutdown(timeout_s=TEARDOWN_SHUTDOWN_S)
    for runtime in started:
        assert runtime.wait_until_gone() == [], "actor processes outlived their system"


@pytest.fixture
def chaos() -> Callable[[ActorRuntime], Chaos]:
    """``chaos(rt).crash(path)``, ``.kill(path)``, ``.delay(path, ms, for_s)``, ``.drop(...)``."""
    return Chaos
