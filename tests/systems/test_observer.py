"""The observer's state (plain objects, no actor system), its ``/metrics`` scraped with the client
library's parser after a known workload, and its token."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from systems.inspect import ActorView, NodeView
from systems.observer import FaultRequest, ObservedState, Observer, ObserverConfig, ProcessSampler
from systems.ping import SYSTEM as PING
from systems.runtime import ActorRuntime
from tests.support.observed import ObservedRun, observed, wait_until

__all__ = ["observed"]


def view(path: str, **kw: object) -> ActorView:
    return ActorView(path=path, actor_class="W", status="running", depth=1, **kw)  # type: ignore


def test_restarts_exits_and_lost_nodes_land_in_the_timeline_once() -> None:
    state = ObservedState(system="s")
    up = NodeView(name="edge-1", status="up", capabilities={"role": "edge"})
    state.update([view("/s/w", pid=10, handled=5)], [up], {}, now=100.0)
    assert not state.timeline
    crashed = view("/s/w", pid=11, handled=2, restarts=1, last_exit="error: E: boom",
                   last_exit_kind="error", last_exit_at=100.5, last_exit_traceback="Traceback…",
                   exits={"error": 1})
    state.update([crashed], [], {}, now=101.0)
    state.update([crashed], [], {}, now=102.0)  # nothing new: nothing added
    kinds = sorted((e.kind, e.target) for e in state.timeline)
    assert kinds == [("exit", "/s/w"), ("node_lost", "edge-1"), ("restart", "/s/w")]
    assert state.exits == {("/s/w", "error"): 1}
    assert state.nodes["edge-1"].status == "lost" and state.nodes["edge-1"].lost_at == 101.0
    assert state.handled_total(crashed) == 7, "messages handled stay monotonic across restarts"
    snapshot = state.as_json()
    assert [e["kind"] for e in snapshot["timeline"]][-1] == "exit"  # newest first
    assert snapshot["actors"][0]["last_exit_traceback"] == "Traceback…"
    state.record_fault(FaultRequest(kind="delay", target="/s/w", ms=50, for_s=2), "ok", 103.0)
    assert state.as_json()["timeline"][0]["text"] == "delay 50 ms for 2 s from the observer: ok"
    state.update([view("/s/w", pid=12, restarts=3, exits={"error": 3})], [], {}, now=103.0)
    state.update([view("/s/w", pid=13, exits={"error": 1})], [], {}, now=104.0)  # a new record
    assert state.exits == {("/s/w", "error"): 4}, "two crashes within a second count twice"


def test_process_sampler_reads_cpu_and_pss_of_this_process() -> None:
    import os
    sampler = ProcessSampler()
    first = sampler.sample({os.getpid()}, now=1.0)[os.getpid()]
    assert first.cpu_seconds > 0 and first.pss_bytes and first.pss_bytes > 1 << 20
    assert first.cpu_percent is None  # a rate needs two samples
    sum(range(300_000))
    assert sampler.sample({os.getpid()}, now=2.0)[os.getpid()].cpu_percent is not None
    assert sampler.sample({2**22 + 7}, now=3.0) == {}, "a gone process is skipped"


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.mark.multiproc
def test_metrics_after_a_known_workload(observed: Callable[..., ObservedRun]) -> None:
    run = observed("ping", "--set", "interval_s=0.05", "--allow-chaos")
    wait_until(run.actors, "a first snapshot")
    for crashes in (1, 2):
        status, body = run.post_fault(kind="crash", target="/ping/ponger")
        assert status == 200 and body["ok"], body
        wait_until(lambda: run.actors()["/ping/ponger"]["restarts"] == crashes  # noqa: B023
                   and run.actors()["/ping/ponger"]["status"] == "running", "ponger back")
    status, body = run.post_fault(kind="kill", target="/ping/pinger")
    assert status == 200, body
    wait_until(lambda: run.actors()["/ping/pinger"]["restarts"] == 1
               and run.actors()["/ping/ponger"]["restarts"] == 2, "both restarts seen")
    m = families(run.get("/metrics").decode())
    assert m["ptr_actor_restarts_total"] == {(("path", "/ping/ponger"),): 2.0,
                                             (("path", "/ping/pinger"),): 1.0}
    assert m["ptr_actor_exits_total"] == {(("path", "/ping/ponger"), ("reason", "error")): 2.0,
                                          (("path", "/ping/pinger"), ("reason", "killed")): 1.0}
    handled = m["ptr_actor_messages_handled_total"]
    assert handled[(("path", "/ping/ponger"),)] >= 2  # answered pings, across incarnations
    assert m["ptr_supervisor_restart_budget_left"][(("path", "/ping"),)] in (0.0, 1.0, 2.0, 3.0)
    assert m["ptr_nodes_up"] == {(): 1.0}
    assert m["ptr_actor_up"][(("path", "/ping/ponger"),)] == 1.0
    assert m["ptr_actor_process_pss_bytes"][(("path", "/ping/ponger"),)] > 1 << 20
    assert m["ptr_actor_process_cpu_seconds_total"][(("path", "/ping"),)] > 0
    assert m["process_cpu_seconds_total"][()] > 0  # the client library's process collector
    assert m["process_resident_memory_bytes"][()] > 1 << 20
    status, body = run.post_fault(kind="crash", target="/ping/nobody")
    assert status == 404 and "no child 'nobody'" in body["text"]
    status, body = run.post_fault(kind="explode", target="/ping/ponger")
    assert status == 400 and body["kind"] == "invalid" and body["error"].startswith("kind:")
    status, body = run.post_fault(kind="crash", target="/ping/ponger",
                                  headers={"Origin": "http://evil.example"})
    assert status == 403 and body["kind"] == "forbidden", "another site's page may not inject"
    status, body = run.post_fault(kind="crash", target="/ping/ponger",
                                  headers={"Content-Type": "text/plain"})
    assert status == 403, "a cross-site form post (text/plain) is refused"
    wait_until(lambda: sum(1 for e in run.snapshot()["timeline"] if e["kind"] == "fault") == 4,
               "every fault in the timeline, the refused one included")
    run.stop()
    assert run.proc.returncode == 0


def test_an_observer_bound_beyond_loopback_needs_its_token(make_runtime) -> None:  # type: ignore
    rt: ActorRuntime = make_runtime(PING.tree(), base="simple", name="ping")
    with Observer(rt, ObserverConfig(host="127.0.0.1", require_token=True)) as observer:
        observer.service(now=1.0)
        assert "?token=" in observer.url
        bare = observer.url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bare + "api/snapshot", timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(observer.url, timeout=10) as page:
            assert b"ptr observer" in page.read()
            assert "ptr_observer=" in page.headers["Set-Cookie"]
        with urllib.request.urlopen(observer.metrics_url, timeout=10) as metrics:
            assert b"ptr_actor_restarts_total" in metrics.read()


def test_light_actors_are_counted_per_host_by_the_hosts_path(make_runtime) -> None:  # type: ignore
    from actors.testing.scripted import LightCounter
    from supervisors.spec import ChildSpec, SupervisorSpec, host_spec
    counters = SupervisorSpec(children=[ChildSpec(f"c{i}", LightCounter) for i in range(3)])
    rt: ActorRuntime = make_runtime(SupervisorSpec(children=[
        host_spec("h1"), counters.as_child("counters", host="h1")]), base="simple", name="lab")
    with Observer(rt) as observer:
        observer.service(now=1.0)
        assert observer.state.light_hosts() == {"/lab/h1": 4}  # the supervisor is light too
        snapshot = observer.state.as_json()
        assert snapshot["light_hosts"] == [{"host": "/lab/h1", "actors": 4}]
        counter = next(a for a in snapshot["actors"] if a["path"] == "/lab/counters/c0")
        host = next(a for a in snapshot["actors"] if a["path"] == "/lab/h1")
        assert counter["pid"] == host["pid"] and counter["light_host"] == "/lab/h1"
        assert counter["cpu_percent"] is None, "the host's CPU is not the light actor's"
        text = urllib.request.urlopen(observer.metrics_url, timeout=10).read().decode()
    lights = {s.labels["host"]: s.value for f in text_string_to_metric_families(text)
              for s in f.samples if s.name == "ptr_light_actors"}
    assert lights == {"/lab/h1": 4.0}


def test_unwatched_the_tree_is_asked_every_idle_interval_and_every_second_while_a_page_watches(
        make_runtime) -> None:  # type: ignore
    """A snapshot asks every actor for its figures: with no page open (only ``/metrics`` and
    ``ptr inspect`` read it) the observer takes one every ``idle_snapshot_every_s``; an open event
    stream brings it to one every ``snapshot_every_s``."""
    import http.client
    import threading

    rt: ActorRuntime = make_runtime(PING.tree(), base="simple", name="ping")
    config = ObserverConfig(snapshot_every_s=1.0, idle_snapshot_every_s=10.0)
    with Observer(rt, config) as observer:
        taken: list[float] = []
        snapshot = observer.snapshot
        observer.snapshot = lambda now: (taken.append(now), snapshot(now))  # type: ignore
        for t in range(1000, 1012):
            observer.service(now=float(t))
        assert taken == [1000.0, 1010.0], "unwatched: every 10 s"

        stream = http.client.HTTPConnection(config.host, observer.port, timeout=10)
        stream.request("GET", "/api/events")
        response = stream.getresponse()
        first = threading.Event()
        threading.Thread(target=lambda: (response.read(6), first.set()), daemon=True).start()
        assert first.wait(10), "the page got the current snapshot"
        for t in range(1012, 1016):
            observer.service(now=float(t))
        assert taken[2:] == [1012.0, 1013.0, 1014.0, 1015.0], "watched: every second"
        stream.close()
