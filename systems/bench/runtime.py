"""``ptr bench runtime``: ptr's overhead over plain Thespian, and how fast a crashed actor is back.

Both message figures use the same credit-window sender and acking sink on ``multiprocTCPBase``,
interleaved (raw, ptr, raw, ptr, ...) so drift on a noisy machine hits both; the median run counts.
Restart time is from the fault (a ``Crash`` message, or SIGKILL of the child's process) to the
replacement answering a request sent to its registered name.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

from actors.bench import RawSink, RawSource, SupervisedSink, SupervisedSource
from actors.scripted import ScriptedActor
from protocols.bench import BenchDone, BenchRun
from protocols.errors import NoSuchNameError, RequestTimeoutError
from protocols.scripted import Crash, Ping
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime

TARGETS = {"overhead_ratio": 0.90, "restart_p50_ms": 100.0}


def bench_spec() -> SupervisorSpec:
    return SupervisorSpec(intensity=10_000, period_s=1.0, children=[
        ChildSpec("sink", SupervisedSink, name="bench-sink"),
        ChildSpec("source", SupervisedSource, name="bench-source"),
        ChildSpec("victim", ScriptedActor, name="victim"),
    ])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure_messages(rt: ActorRuntime, count: int, window: int, rounds: int) -> dict[str, float]:
    raw_source, raw_sink = rt.create_actor(RawSource), rt.create_actor(RawSink)
    ptr_source, ptr_sink = rt.whereis("bench-source"), rt.whereis("bench-sink")
    timeout = 120.0

    def raw(n: int) -> float:
        done = rt.ask_plain(raw_source, BenchRun(target=raw_sink, count=n, window=window),
                            BenchDone, timeout)
        return n / done.elapsed_s

    def supervised(n: int) -> float:
        done = rt.ask(ptr_source, BenchRun(target=ptr_sink, count=n, window=window), timeout)
        return n / done.elapsed_s

    raw(min(500, count)), supervised(min(500, count))  # warm up: connections, imports
    raw_rates, ptr_rates = [], []
    for _ in range(rounds):
        raw_rates.append(raw(count))
        ptr_rates.append(supervised(count))
    raw_rate, ptr_rate = statistics.median(raw_rates), statistics.median(ptr_rates)
    return {"raw_msgs_per_s": round(raw_rate), "supervised_msgs_per_s": round(ptr_rate),
            "overhead_ratio": round(ptr_rate / raw_rate, 3),
            "raw_runs": [round(r) for r in raw_rates], "supervised_runs": [round(r) for r in ptr_rates]}


def measure_restarts(rt: ActorRuntime, samples: int) -> dict[str, Any]:
    by_fault: dict[str, list[float]] = {"error": [], "sigkill": []}
    for n in range(samples):
        fault = "error" if n % 2 == 0 else "sigkill"
        old = rt.whereis("victim")
        pid = rt.ask(old, Ping()).pid
        began = time.perf_counter()
        if fault == "error":
            rt.tell(old, Crash(text="bench"))
        else:
            os.kill(pid, signal.SIGKILL)
        while True:
            try:
                address = rt.whereis("victim", timeout_s=5)
                if address != old and rt.ask(address, Ping(), 1).pid != pid:
                    break
            except (NoSuchNameError, RequestTimeoutError):
                pass
        by_fault[fault].append((time.perf_counter() - began) * 1000)
    every = by_fault["error"] + by_fault["sigkill"]
    return {
        "restart_p50_ms": round(statistics.median(every), 2),
        "restart_p99_ms": round(_percentile(every, 0.99), 2),
        "restart_samples": len(every),
        "restart_by_fault_p50_ms": {k: round(statistics.median(v), 2) for k, v in by_fault.items()},
    }


def run(messages: int = 5000, window: int = 8, rounds: int = 3, restarts: int = 40) -> dict[str, Any]:
    with ActorRuntime(bench_spec(), base="multiproc") as rt:
        result: dict[str, Any] = {"base": "multiprocTCPBase", "messages": messages,
                                  "window": window, "rounds": rounds}
        result.update(measure_messages(rt, messages, window, rounds))
        result.update(measure_restarts(rt, restarts))
        leftover_sessions = set(rt.session_ids)
    from systems.processes import processes_in_sessions
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "overhead_ratio": result["overhead_ratio"] >= TARGETS["overhead_ratio"],
        "restart_p50_ms": result["restart_p50_ms"] <= TARGETS["restart_p50_ms"],
    }
    result["processes_left"] = len(processes_in_sessions(leftover_sessions))
    return result
