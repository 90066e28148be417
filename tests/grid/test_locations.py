"""Two locations as hosts: each location's node runs in its own network namespace (a veth pair into
a bridge, addresses 10.231.0.0/24), joins the system's convention with the system's cookie, and
hosts that location's gateways; sensors reach each location's gateways at its own address. Losing
a location's node leaves its gateways unplaceable (no other host of that location) until a spare
host of that location joins, where they restart.

Needs root and ``ip`` (skipped otherwise); everything created is deleted, also on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols.errors import RequestTimeoutError
from protocols.supervision import ChildInfo
from systems.grid import SYSTEM, GridSettings
from systems.runtime import free_port
from tests.support.grid import make_place, post, reading
from tests.support.nodes import Nodes, assert_sessions_gone

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.multiproc
LEADER = "10.231.0.1"
HOSTS = {"north": "10.231.0.2", "south": "10.231.0.3", "north-spare": "10.231.0.4"}


def sh(*words: str, check: bool = True) -> None:
    subprocess.run(list(words), check=check, capture_output=True, timeout=20)


@pytest.fixture
def network() -> Iterator[dict[str, str]]:
    """A bridge with the leader's address and one namespace per host, connected by veth pairs."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for network namespaces")
    tag = uuid.uuid4().hex[:5]
    bridge = f"ptrbr{tag}"
    spaces = {host: f"ptr-grid-{host}-{tag}" for host in HOSTS}
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{LEADER}/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        for index, (host, space) in enumerate(spaces.items()):
            outer, inner = f"ptrv{tag}{index}", f"ptri{tag}{index}"
            sh("ip", "netns", "add", space)
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", outer, "master", bridge)
            sh("ip", "link", "set", outer, "up")
            sh("ip", "link", "set", inner, "netns", space)
            sh("ip", "netns", "exec", space, "ip", "addr", "add", f"{HOSTS[host]}/24", "dev", inner)
            sh("ip", "netns", "exec", space, "ip", "link", "set", inner, "up")
            sh("ip", "netns", "exec", space, "ip", "link", "set", "lo", "up")
        yield spaces
    finally:
        for space in spaces.values():
            sh("ip", "netns", "delete", space, check=False)  # takes its veth ends along
        sh("ip", "link", "delete", bridge, check=False)


class Hosts(Nodes):
    """The nodes of the locations' hosts: each in its namespace, advertising its own address."""

    def __init__(self, spaces: dict[str, str], run_dir: Path, leader_port: int) -> None:
        super().__init__(run_dir, leader_port, leader_host=LEADER)
        self.spaces = spaces

    def start_host(self, host: str, location: str) -> None:
        self.start(host, capabilities={"location": location},
                   prefix=["ip", "netns", "exec", self.spaces[host]],
                   env={"THESPIAN_BASE_IPADDR": HOSTS[host]})


def gateway(rt: Any, child_id: str) -> ChildInfo | None:
    try:
        supervisor = rt.which_child("gateways").info.address
        return {c.child_id: c for c in rt.which_children(supervisor).children}.get(child_id)
    except RequestTimeoutError:
        return None


def wait_child(rt: Any, child_id: str, predicate: Any, what: str) -> ChildInfo:
    def check() -> ChildInfo | None:
        child = gateway(rt, child_id)
        return child if child is not None and predicate(child) else None
    return rt.wait_for(check, timeout_s=30, interval_s=0.1, what=what)


def test_gateways_of_two_locations_run_on_their_hosts_and_fail_over(
        network, make_runtime, tmp_path, monkeypatch) -> None:
    place = make_place(tmp_path, sensors=2)
    port = free_port()
    settings = SYSTEM.settings(overrides={
        "data_dir": str(tmp_path), "port": port, "gateways": 1, "host": "0.0.0.0",
        "locations": ["north", "south"], "mqtt": False,
        "server_names": ["127.0.0.1", *HOSTS.values()]})
    assert isinstance(settings, GridSettings)
    monkeypatch.setenv("THESPIAN_BASE_IPADDR", LEADER)  # the leader is reached on the bridge
    rt = make_runtime(SYSTEM.tree(settings), base="multiproc", name="grid")
    hosts = Hosts(network, tmp_path / "run", rt.admin_port)
    sids: list[int] = []
    try:
        assert gateway(rt, "gw-north-1").status == "unplaceable"
        hosts.start_host("north", "north")
        hosts.start_host("south", "south")
        north = wait_child(rt, "gw-north-1", lambda c: c.status == "running", "north placed")
        south = wait_child(rt, "gw-south-1", lambda c: c.status == "running", "south placed")
        assert (north.node, south.node) == ("north", "south")
        ctx = place.ca.client_context()
        for seq, (host, gw) in enumerate([("north", "gw-north-1"), ("south", "gw-south-1")], 1):
            url = f"https://{HOSTS[host]}:{port}"
            answer = rt.wait_for(lambda url=url, seq=seq: _post(url, place, seq, ctx),
                                 timeout_s=20, what=f"an answer from {host}")
            assert answer.body["gateway"] == gw

        hosts.kill("north")
        lost = wait_child(rt, "gw-north-1", lambda c: c.status == "unplaceable", "north lost")
        assert lost.last_exit is not None and "north" in lost.last_exit.text
        assert gateway(rt, "gw-south-1").status == "running"  # the other location serves on
        hosts.start_host("north-spare", "north")
        moved = wait_child(rt, "gw-north-1", lambda c: c.status == "running", "north moved")
        assert moved.node == "north-spare"
        answer = rt.wait_for(lambda: _post(f"https://{HOSTS['north-spare']}:{port}", place, 3,
                                           ctx), timeout_s=20, what="the spare answers")
        assert answer.body["gateway"] == "gw-north-1"
    finally:
        sids = hosts.stop_all()
    assert_sessions_gone(sids, "a host")


def _post(url: str, place: Any, seq: int, ctx: Any) -> Any:
    try:
        answer = post(url, reading("s0", seq), sensor_id="s0", token=place.tokens["s0"],
                      context=ctx, timeout_s=3)
    except OSError:
        return None
    return answer if answer.status == 200 else None
