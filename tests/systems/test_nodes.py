"""Across nodes: children land on nodes whose capabilities meet their requirements; a lost node is
noticed within 5 s and its children restart on another node, or are reported unplaceable.

Every node is a real Thespian admin on its own loopback port: the leader is this test's runtime,
the others are ``ptr node start`` processes, killed with SIGKILL like a machine that dies."""

from __future__ import annotations

import time


from protocols.scripted import Ping
from systems import inspect

from tests.support.nodes import SPEC, Nodes, cluster, edge_child, wait  # noqa: F401 (fixtures)


def test_placement_by_capability_and_failover_to_another_node(cluster) -> None:
    rt, nodes = cluster
    assert edge_child(rt).status == "unplaceable", "no node has role=edge yet: reported, not fatal"
    core = {c.child_id: c for c in rt.which_children().children}["core"]
    assert core.status == "running" and core.node != "edge-1"

    nodes.start("edge-1", "edge")
    on_first = wait(rt, lambda c: c.status == "running" and c.node == "edge-1", "placed on edge-1")
    assert rt.ask("edge", Ping()).pid == on_first.pid
    nodes.start("edge-2", "edge")
    nodes.start("core-2", "core")

    views = {v.path: v for v in inspect.live_tree(rt)}
    assert views["/root/edge"].node == "edge-1" and views["/root/core"].node == core.node
    assert {"edge-1", "edge-2", "core-2"} <= set(inspect.nodes(rt)), "inspect lists the nodes"

    killed_at = time.time()
    nodes.kill("edge-1")
    moved = wait(rt, lambda c: c.status == "running" and c.node == "edge-2", "failed over")
    assert moved.last_exit is not None and moved.last_exit.text == "node edge-1 lost"
    assert moved.last_exit_at - killed_at < 5.0, "a lost node is noticed within 5 s"
    assert rt.ask("edge", Ping()).pid == moved.pid

    nodes.kill("edge-2")
    wait(rt, lambda c: c.status == "unplaceable", "no edge node left: unplaceable")
    assert {c.child_id: c for c in rt.which_children().children}["core"].status == "running"
