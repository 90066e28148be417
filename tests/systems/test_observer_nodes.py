"""Nodes in the observer: each with its capabilities and liveness; killing one from the fault API
shows it lost, with when, in the node list and the timeline."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import pytest

from systems.observer import Observer, ObserverConfig
from systems.runtime import ActorRuntime
from tests.support.nodes import Nodes, cluster

__all__ = ["cluster"]
pytestmark = pytest.mark.multiproc


def serve_until(observer: Observer, rt: ActorRuntime, predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: {observer.state.as_json()['nodes']}"
        rt.idle(0.1)
        observer.service()


def test_kill_a_node_from_the_observer_and_see_it_lost(
        cluster: tuple[ActorRuntime, Nodes]) -> None:
    rt, nodes = cluster
    nodes.start("edge-1", "edge")
    config = ObserverConfig(allow_chaos=True, snapshot_every_s=0.2)
    with Observer(rt, config, find_node_sid=nodes.sid) as observer:
        serve_until(observer, rt, lambda: "edge-1" in observer.state.nodes and any(
            v.path == "/root/edge" and v.node == "edge-1" and v.status == "running"
            for v in observer.state.views), "edge-1 listed, its child placed there")
        node = observer.state.as_json()["nodes"][0]
        assert node == {"name": "edge-1", "status": "up", "lost_at": None,
                        "capabilities": {"role": "edge", "ptr.node": "edge-1"}}
        answers: list[Any] = []
        request = urllib.request.Request(
            observer.url + "api/faults", method="POST",
            data=json.dumps({"kind": "kill-node", "target": "edge-1"}).encode(),
            headers={"Content-Type": "application/json"})
        poster = threading.Thread(target=lambda: answers.append(
            json.loads(urllib.request.urlopen(request, timeout=30).read())))
        poster.start()
        serve_until(observer, rt, lambda: answers, "the fault's answer")
        poster.join()
        assert answers[0]["ok"] and answers[0]["text"].startswith("killed node edge-1: ")
        serve_until(observer, rt, lambda: observer.state.nodes["edge-1"].status == "lost",
                    "edge-1 lost")
        lost = observer.state.as_json()
        assert lost["nodes"][0]["lost_at"] is not None
        kinds = [(e["kind"], e["target"]) for e in lost["timeline"]]
        assert ("node_lost", "edge-1") in kinds and ("fault", "edge-1") in kinds
