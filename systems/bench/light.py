"""``ptr bench light``: what a light actor costs and how fast it talks, beside plain Thespian.

All on ``multiprocTCPBase``. Memory is the RSS growth of a host process (read from /proc) while it
starts 100,000 idle light actors under a simple_one_for_one light supervisor, divided by the
count; spawn rate is the same start, timed. Local and cross-host rates are one light actor sending
ints to another (same host; two hosts) until the receiver has them all. Restart time is measured
inside the host, by a light probe: crash, then until the replacement answers a ``Ping``.
``raw_thespian_msgs_per_s`` is the runtime benchmark's plain Thespian pair, in the same run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from actors.testing.bench import (
    LightBenchSink,
    LightBenchSource,
    LightRestartProbe,
    RawSink,
    RawSource,
)
from actors.testing.scripted import LightCounter, LightScriptedActor
from protocols.bench import BenchDone, BenchRun, Blast, BlastDone, RestartLoop, RestartTimes
from protocols.light import HostReport, HostStatus
from protocols.supervision import StartChildren, StartChildrenReply
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec, host_spec
from systems.runtime import ActorRuntime

TARGETS = {"bytes_per_actor": 3000, "local_msgs_per_s": 200_000, "spawn_per_s": 50_000,
           "restart_p50_us": 1000, "cross_host_vs_raw": 20}


def bench_spec() -> SupervisorSpec:
    h1 = SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec("sink", LightBenchSink, name="local-sink"),
        ChildSpec("source", LightBenchSource, name="local-source"),
        ChildSpec("probe", LightRestartProbe, name="probe"),
        ChildSpec("victim", LightScriptedActor),
    ], intensity=1_000_000, period_s=1.0)
    h2 = SupervisorSpec(Strategy.ONE_FOR_ONE, [ChildSpec("sink", LightBenchSink, name="far-sink")])
    idle = SupervisorSpec(Strategy.SIMPLE_ONE_FOR_ONE,
                          [ChildSpec("idle", LightCounter, restart=RestartType.TEMPORARY)])
    return SupervisorSpec(children=[
        host_spec("h1"), host_spec("h2"), host_spec("h3"),
        h1.as_child("bench-h1", host="h1", name="bench-h1"),
        h2.as_child("bench-h2", host="h2"),
        idle.as_child("idle", host="h3", name="idle"),
    ])


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _blast(rt: ActorRuntime, sink: str, count: int) -> float:
    done = rt.ask("local-source", Blast(target=rt.whereis(sink), count=count), 600)
    assert isinstance(done, BlastDone) and done.received == done.count, done
    return count / done.elapsed_s


def _raw(rt: ActorRuntime, count: int, window: int) -> float:
    source, sink = rt.create_actor(RawSource), rt.create_actor(RawSink)
    rt.ask_plain(source, BenchRun(target=sink, count=200, window=window), BenchDone, 60)
    done = rt.ask_plain(source, BenchRun(target=sink, count=count, window=window), BenchDone, 600)
    return count / done.elapsed_s


def run(idle_actors: int = 100_000, messages: int = 300_000, raw_messages: int = 3000,
        restarts: int = 200, window: int = 8) -> dict[str, Any]:
    result: dict[str, Any] = {"base": "multiprocTCPBase", "idle_actors": idle_actors,
                              "messages": messages}
    with ActorRuntime(bench_spec(), base="multiproc") as rt:
        _blast(rt, "local-sink", 10_000)  # warm up
        result["local_msgs_per_s"] = round(_blast(rt, "local-sink", messages))
        _blast(rt, "far-sink", 10_000)
        result["cross_host_msgs_per_s"] = round(_blast(rt, "far-sink", messages))
        result["raw_thespian_msgs_per_s"] = round(_raw(rt, raw_messages, window))
        result["cross_host_vs_raw"] = round(result["cross_host_msgs_per_s"]
                                            / result["raw_thespian_msgs_per_s"], 1)

        times = rt.ask("probe", RestartLoop(supervisor=rt.whereis("bench-h1"), victim_id="victim",
                                            samples=restarts), 300)
        assert isinstance(times, RestartTimes)
        micros = sorted(times.micros)
        result["restart_p50_us"] = round(statistics.median(micros), 1)
        result["restart_p99_us"] = round(micros[int(0.99 * (len(micros) - 1))], 1)

        host = rt.ask("h3", HostStatus())
        assert isinstance(host, HostReport)
        idle_sup = rt.whereis("idle")
        rt.ask(idle_sup, StartChildren(count=100), 60)  # warm up allocator and code paths
        before = rss_bytes(host.pid)
        began = time.perf_counter()
        reply = rt.ask(idle_sup, StartChildren(count=idle_actors), 600)
        elapsed = time.perf_counter() - began
        assert isinstance(reply, StartChildrenReply) and reply.running == idle_actors, reply
        after = rss_bytes(host.pid)
        result["spawn_per_s"] = round(idle_actors / elapsed)
        result["bytes_per_actor"] = round((after - before) / idle_actors)
        result["host_lights"] = rt.ask("h3", HostStatus()).lights
    result["processes_left"] = len(rt.wait_until_gone())
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "bytes_per_actor": result["bytes_per_actor"] <= TARGETS["bytes_per_actor"],
        "local_msgs_per_s": result["local_msgs_per_s"] >= TARGETS["local_msgs_per_s"],
        "spawn_per_s": result["spawn_per_s"] >= TARGETS["spawn_per_s"],
        "restart_p50_us": result["restart_p50_us"] <= TARGETS["restart_p50_us"],
        "cross_host_vs_raw": result["cross_host_vs_raw"] >= TARGETS["cross_host_vs_raw"],
    }
    return result
