"""EdgeBridge and LoopThread: the hand-off between an edge's loop thread and an actor thread."""

from __future__ import annotations

import asyncio
import select
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors.edges import BridgeClosedError, EdgeBridge, LoopThread, SaturatedError
from protocols.errors import PtrError
from tests.support.bridge_actor import ActorThread


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@pytest.fixture
def bridge() -> Iterator[EdgeBridge[Any]]:
    bridge: EdgeBridge[Any] = EdgeBridge(max_in_flight=4)
    yield bridge
    bridge.close()


async def test_submit_returns_what_the_actor_thread_resolves(bridge: EdgeBridge[Any]) -> None:
    with ActorThread(bridge, lambda p: p.resolve(p.item * 2)):
        results = await asyncio.gather(*(bridge.submit(i) for i in range(4)))
    assert results == [0, 2, 4, 6]
    assert bridge.in_flight == 0


async def test_fail_raises_the_actor_exception_in_the_submitter(bridge: EdgeBridge[Any]) -> None:
    with ActorThread(bridge, lambda p: p.fail(ValueError(f"no {p.item}"))):
        with pytest.raises(ValueError, match="no 7"):
            await bridge.submit(7)
    assert bridge.in_flight == 0


async def test_full_bridge_refuses_at_once_with_saturated_error(bridge: EdgeBridge[Any]) -> None:
    for i in range(4):
        bridge.submit_nowait(i)
    with pytest.raises(SaturatedError) as caught:
        bridge.submit_nowait(4)
    assert caught.value.limit == 4 and isinstance(caught.value, PtrError)
    with pytest.raises(SaturatedError):
        await bridge.submit(5)  # raises without waiting: nobody drains here
    assert bridge.in_flight == 4


async def test_fire_and_forget_frees_its_slot_when_drained(bridge: EdgeBridge[Any]) -> None:
    for i in range(4):
        bridge.submit_nowait(i)
    taken = bridge.drain(max_items=2)
    assert [p.item for p in taken] == [0, 1]
    assert not any(p.expects_reply for p in taken)
    assert bridge.in_flight == 2
    assert taken[0].resolve("ignored") is False  # nobody waits for it
    bridge.submit_nowait(4)
    assert [p.item for p in bridge.drain()] == [2, 3, 4]


async def test_awaited_item_holds_its_slot_until_settled() -> None:
    bridge: EdgeBridge[Any] = EdgeBridge(max_in_flight=1)
    task = asyncio.create_task(bridge.submit("q"))
    await asyncio.sleep(0)  # let the task enqueue; not synchronisation, the drain below checks it
    [pending] = bridge.drain()
    assert pending.expects_reply and bridge.in_flight == 1
    with pytest.raises(SaturatedError):
        bridge.submit_nowait("other")
    assert pending.resolve("a") is True
    assert pending.resolve("b") is False  # settled once only
    assert await task == "a"
    bridge.submit_nowait("other")
    bridge.close()


async def test_wake_fd_is_readable_exactly_while_work_waits(bridge: EdgeBridge[Any]) -> None:
    assert not readable(bridge.wake_fd)
    bridge.submit_nowait(1)
    bridge.submit_nowait(2)
    bridge.submit_nowait(3)
    assert readable(bridge.wake_fd)
    assert len(bridge.drain(max_items=1)) == 1
    assert readable(bridge.wake_fd), "a partial drain must leave the actor a reason to come back"
    assert len(bridge.drain(max_items=10)) == 2
    assert not readable(bridge.wake_fd)
    assert bridge.drain() == []


async def test_answer_to_a_cancelled_submit_is_dropped_and_frees_the_slot(
        bridge: EdgeBridge[Any]) -> None:
    task = asyncio.create_task(bridge.submit("slow"))
    await asyncio.sleep(0)
    [pending] = bridge.drain()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bridge.in_flight == 1, "the actor still holds the item"
    assert pending.resolve("late") is True
    assert bridge.in_flight == 0


async def test_resolve_many_answers_a_drained_batch(bridge: EdgeBridge[Any]) -> None:
    tasks = [asyncio.create_task(bridge.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    bridge.submit_nowait("fire-and-forget")
    drained = bridge.drain()
    settled = await asyncio.to_thread(bridge.resolve_many, [(p, f"r{p.item}") for p in drained])
    assert settled == 3
    assert await asyncio.gather(*tasks) == ["r0", "r1", "r2"]
    assert bridge.in_flight == 0


async def test_close_fails_every_waiter_and_refuses_new_items() -> None:
    bridge: EdgeBridge[Any] = EdgeBridge(max_in_flight=4)
    queued = asyncio.create_task(bridge.submit("queued"))
    drained = asyncio.create_task(bridge.submit("drained"))
    await asyncio.sleep(0)
    bridge.drain(max_items=1)
    bridge.close(BridgeClosedError("actor stopped"))
    for task in (queued, drained):
        with pytest.raises(BridgeClosedError, match="actor stopped"):
            await task
    with pytest.raises(BridgeClosedError):
        bridge.submit_nowait("late")
    assert bridge.closed and bridge.in_flight == 0 and bridge.drain() == []
    bridge.close()  # idempotent


def test_loop_thread_runs_coroutines_and_stops_cleanly() -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def answer() -> str:
        asyncio.get_running_loop().create_task(forever())
        return threading.current_thread().name

    loop_thread = LoopThread(name="edge-test-loop")
    loop = loop_thread.start()
    assert loop_thread.run(answer(), timeout_s=5) == "edge-test-loop"
    assert loop_thread.stop(timeout_s=5) is True
    assert cancelled.is_set(), "stop cancels what still runs"
    assert not loop_thread.running and loop.is_closed()
    assert loop_thread.stop() is True  # idempotent


def test_loop_thread_run_that_times_out_cancels_the_coroutine() -> None:
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with LoopThread() as loop_thread:
        with pytest.raises(TimeoutError):
            loop_thread.run(stuck(), timeout_s=0.01)
        assert cancelled.wait(5), "the timed-out coroutine was cancelled on the loop"


def test_submit_from_a_loop_thread_is_answered_by_the_actor_thread() -> None:
    bridge: EdgeBridge[Any] = EdgeBridge(max_in_flight=64)
    with LoopThread() as loop_thread, ActorThread(bridge, lambda p: p.resolve(-p.item)):
        async def many() -> list[Any]:
            return list(await asyncio.gather(*(bridge.submit(i) for i in range(50))))
        assert loop_thread.run(many(), timeout_s=10) == [-i for i in range(50)]
    bridge.close()
