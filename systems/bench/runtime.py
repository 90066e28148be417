"""``ptr bench runtime``: ptr's overhead over plain Thespian, and how fast a crashed actor is back.

Both message figures use the same credit-window sender and acking sink on ``multiprocTCPBase``,
interleaved (raw, ptr, raw, ptr, ...) so drift on a noisy machine hits both; the median run counts.
Restart time is from the fault (a ``Crash`` message, or SIGKILL of the child's process) to the
replacement answering a request sent to its registered name.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

from actors.testing.bench import RawSink, RawSource, SupervisedSink, SupervisedSource
from actors.testing.scripted import ScriptedActor
from protocols.bench import BenchDone, BenchItem, BenchRun
from protocols.errors import NoSuchNameError, RequestTimeoutError
from protocols.scripted import Crash, Ping
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime, frame_codec

TARGETS = {"overhead_ratio": 0.90, "transport_ratio": 0.90, "restart_p50_ms": 100.0}


def bench_spec() -> SupervisorSpec:
    return SupervisorSpec(intensity=10_000, period_s=1.0, children=[
        ChildSpec("sink", SupervisedSink, name="bench-sink"),
        ChildSpec("source", SupervisedSource, name="bench-source"),
        ChildSpec("victim", ScriptedActor, name="victim"),
    ])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure_messages(rt: ActorRuntime, count: int, window: int, rounds: int) -> dict[str, Any]:
    raw_source, raw_sink = rt.create_actor(RawSource), rt.create_actor(RawSink)
    ptr_source, ptr_sink = rt.whereis("bench-source"), rt.whereis("bench-sink")
    timeout = 120.0

    def raw(n: int) -> float:
        done = rt.ask_plain(raw_source, BenchRun(target=raw_sink, count=n, window=window),
                            BenchDone, timeout)
        return float(n / done.elapsed_s)

    def supervised(n: int) -> float:
        done = rt.ask(ptr_source, BenchRun(target=ptr_sink, count=n, window=window), timeout)
        return float(n / done.elapsed_s)

    raw(min(500, count)), supervised(min(500, count))  # warm up: connections, imports
    raw_rates, ptr_rates, plain_rates = [], [], []
    for _ in range(rounds):
        plain_rates.append(plain_thespian(count, window))
        raw_rates.append(raw(count))
        ptr_rates.append(supervised(count))
    raw_rate, ptr_rate = statistics.median(raw_rates), statistics.median(ptr_rates)
    plain_rate = statistics.median(plain_rates)
    return {"plain_thespian_msgs_per_s": round(plain_rate),
            "raw_msgs_per_s": round(raw_rate), "supervised_msgs_per_s": round(ptr_rate),
            "transport_ratio": round(raw_rate / plain_rate, 3),
            "overhead_ratio": round(ptr_rate / raw_rate, 3),
            "end_to_end_ratio": round(ptr_rate / plain_rate, 3),
            "plain_thespian_runs": [round(r) for r in plain_rates],
            "raw_runs": [round(r) for r in raw_rates], "supervised_runs": [round(r) for r in ptr_rates]}


def plain_thespian(count: int, window: int) -> float:
    """The same raw sender and sink on Thespian's transport as shipped, in a process of its own
    (``systems.bench.runtime_plain``): the baseline of the authenticated, bound transport."""
    out = subprocess.run([sys.executable, "-m", "systems.bench.runtime_plain", str(count),
                          str(window)], capture_output=True, text=True, timeout=300, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["msgs_per_s"])


def frame_cost_us(frames: int = 20_000, repeat: int = 5) -> dict[str, float]:
    """Microseconds to encode and decode one small frame, with and without the MAC (the best of
    ``repeat`` passes each, interleaved, so a busy moment does not land on one side)."""
    message = (BenchItem(seq=1), "sender-address")
    codec = frame_codec()

    def per_frame(dumps: Any, loads: Any) -> float:
        began = time.perf_counter()
        for _ in range(frames):
            loads(dumps(message))
        return (time.perf_counter() - began) / frames * 1e6

    plain, signed = [], []
    for _ in range(repeat):
        plain.append(per_frame(pickle.dumps, pickle.loads))
        signed.append(per_frame(codec.dumps, codec.loads))
    return {"frame_plain_us": round(min(plain), 2), "frame_signed_us": round(min(signed), 2),
            "frame_mac_us": round(min(signed) - min(plain), 2)}


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


def measure_observed(rt: ActorRuntime, count: int, window: int, rounds: int) -> dict[str, Any]:
    """Supervised messages/s with observing off, then on, in one run; the observer's own CPU
    as a share of one core over the observed runs."""
    from systems.bench.observe import observing
    from systems.observer.state import ProcessSampler
    ptr_source, ptr_sink = rt.whereis("bench-source"), rt.whereis("bench-sink")

    def supervised() -> float:
        done = rt.ask(ptr_source, BenchRun(target=ptr_sink, count=count, window=window), 120.0)
        return float(count / done.elapsed_s)
    off = statistics.median(supervised() for _ in range(rounds))
    with observing(rt) as pid:
        sampler = ProcessSampler()
        began = time.monotonic()
        before = sampler.sample({pid}, began)[pid].cpu_seconds
        on = statistics.median(supervised() for _ in range(rounds))
        spent = sampler.sample({pid}, time.monotonic())[pid].cpu_seconds - before
        elapsed = time.monotonic() - began
    return {"observe_off_msgs_per_s": round(off), "observe_on_msgs_per_s": round(on),
            "observe_throughput_cost": round(1 - on / off, 3),
            "observer_cpu_share": round(spent / max(elapsed, 1e-9), 3)}


def run(messages: int = 5000, window: int = 8, rounds: int = 3, restarts: int = 40,
        observe: bool = False) -> dict[str, Any]:
    """``observe``: measure the supervised messages again with the web observer attached and
    scraped every second (systems/bench/observe.py), and report the cost of observing."""
    with ActorRuntime(bench_spec(), base="multiproc") as rt:
        result: dict[str, Any] = {"base": "multiprocTCPBase", "messages": messages,
                                  "window": window, "rounds": rounds}
        result.update(measure_messages(rt, messages, window, rounds))
        if observe:
            result.update(measure_observed(rt, messages, window, rounds))
        result.update(measure_restarts(rt, restarts))
        result.update(frame_cost_us())
        leftover_sessions = set(rt.session_ids)
    from systems.processes import processes_in_sessions
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "overhead_ratio": result["overhead_ratio"] >= TARGETS["overhead_ratio"],
        "transport_ratio": result["transport_ratio"] >= TARGETS["transport_ratio"],
        "restart_p50_ms": result["restart_p50_ms"] <= TARGETS["restart_p50_ms"],
    }
    result["processes_left"] = len(processes_in_sessions(leftover_sessions))
    return result
