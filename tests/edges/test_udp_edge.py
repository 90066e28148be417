"""The supervised UDP edge: datagrams reach the tree in batches, bad ones are counted and dropped,
replies leave from the edge's own port, a slow target costs dropped batches (not memory), and a
killed edge is back on its port."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator

import msgpack
import pytest

from actors.testing.scripted import ScriptedActor
from actors.edges.udp_edge import DatagramSink, UdpEdgeActor
from protocols.message import Message
from protocols.edges import (
    DatagramCounts,
    EdgeInfo,
    GetDatagramCounts,
    GetEdgeInfo,
    GetUdpEdgeStats,
    UdpEdgeStats,
)
from protocols.supervision import ChildInfo, ExitKind
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime


class Input(Message):
    player: int
    seq: int


def encoded(player: int, seq: int) -> bytes:
    return msgpack.packb({"v": 1, "k": "Input", "d": {"player": player, "seq": seq}})


GARBAGE = [
    b"",
    b"\xc1",                                                   # a byte msgpack never uses
    b"\x93\x01",                                               # truncated array
    msgpack.packb([1, 2, 3]),                                  # not an envelope
    msgpack.packb({"v": 1, "k": "Nope", "d": {}}),             # unknown kind
    msgpack.packb({"v": 1, "k": "Input", "d": {"player": "x", "seq": 1}}),  # wrong type
]


def tree(*, edge: dict | None = None, sink: dict | None = None,
         target_actor: type = DatagramSink) -> SupervisorSpec:
    return SupervisorSpec(intensity=10, children=[
        ChildSpec("sink", target_actor, dict(sink or {}), name="sink"),
        ChildSpec("udp", UdpEdgeActor, {"target": "sink", **(edge or {})}, name="udp-edge"),
    ])


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def edge_of(rt: ActorRuntime) -> EdgeInfo:
    return rt.ask("udp-edge", GetEdgeInfo())


def stats(rt: ActorRuntime) -> UdpEdgeStats:
    return rt.ask("udp-edge", GetUdpEdgeStats())


def counts(rt: ActorRuntime) -> DatagramCounts:
    return rt.ask("sink", GetDatagramCounts())


def child(rt: ActorRuntime, child_id: str) -> ChildInfo:
    return next(c for c in rt.which_children().children if c.child_id == child_id)


def test_datagrams_reach_the_target_in_batches_not_one_message_each(make_runtime, base,
                                                                    client) -> None:
    rt = make_runtime(tree(edge={"interval_s": 0.05, "message_types": [Input]},
                           sink={"keep_last": 200}), base=base)
    edge = edge_of(rt)
    for seq in range(200):
        client.sendto(encoded(7, seq), (edge.host, edge.port))
    got = rt.wait_for(lambda: (c := counts(rt)).datagrams == 200 and c, what="200 delivered")
    assert 1 <= got.batches <= 10
    assert got.last_items == [{"player": 7, "seq": seq} for seq in range(200)]  # typed, in order
    assert stats(rt).datagrams_delivered == 200


@pytest.mark.multiproc
def test_bad_datagrams_are_counted_and_dropped_and_the_edge_lives_on(make_runtime,
                                                                     client) -> None:
    rt = make_runtime(tree(edge={"message_types": [Input]}), base="multiproc")
    edge = edge_of(rt)
    for n, garbage in enumerate(GARBAGE):
        client.sendto(garbage, (edge.host, edge.port))
        client.sendto(encoded(1, n), (edge.host, edge.port))
    final = rt.wait_for(lambda: (s := stats(rt)).received == 2 * len(GARBAGE) and s,
                        what="every datagram read")
    assert (final.dropped_bad, final.decoded) == (len(GARBAGE), len(GARBAGE))
    rt.wait_for(lambda: counts(rt).datagrams == len(GARBAGE), what="good ones delivered")
    info = child(rt, "udp")
    assert (info.restarts, edge_of(rt).incarnation) == (0, 1)


def test_replies_go_out_from_the_edges_own_socket(make_runtime, client) -> None:
    rt = make_runtime(tree(sink={"echo": True}), base="simple")
    edge = edge_of(rt)
    for seq in range(20):
        client.sendto(msgpack.packb({"seq": seq}), (edge.host, edge.port))
    replies: list[tuple[bytes, tuple]] = []

    def read_replies() -> bool:
        try:
            while True:
                replies.append(client.recvfrom(2048))
        except BlockingIOError:
            return len(replies) >= 20

    rt.wait_for(read_replies, what="20 echoes")
    assert {source for _, source in replies} == {(edge.host, edge.port)}
    assert sorted(msgpack.unpackb(data)["seq"] for data, _ in replies) == list(range(20))
    assert stats(rt).sent == 20


def test_a_target_that_does_not_answer_costs_dropped_batches_not_a_growing_queue(make_runtime,
                                                                                client) -> None:
    rt = make_runtime(tree(edge={"window": 1, "max_in_flight": 1, "interval_s": 0.001},
                           target_actor=ScriptedActor), base="simple")  # it never answers a batch
    address = (edge_of(rt).host, edge_of(rt).port)
    client.sendto(msgpack.packb(1), address)
    rt.wait_for(lambda: stats(rt).batches_delivered == 1, what="first batch in flight")
    client.sendto(msgpack.packb(2), address)
    rt.wait_for(lambda: stats(rt).batches_waiting == 1, what="second batch held in the bridge")
    client.sendto(msgpack.packb(3), address)
    final = rt.wait_for(lambda: (s := stats(rt)).dropped_saturated == 1 and s,
                        what="third batch dropped")
    assert (final.batches_delivered, final.batches_waiting, final.decoded) == (1, 1, 3)
    assert child(rt, "udp").restarts == 0


@pytest.mark.multiproc
def test_the_udp_edge_restarts_on_its_port_after_kill_9(make_runtime, client) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    rt = make_runtime(tree(edge={"port": port}), base="multiproc")
    victim = child(rt, "udp")
    os.kill(victim.pid, signal.SIGKILL)
    replacement = rt.wait_for(lambda: (c := child(rt, "udp")).status == "running" and
                              c.pid != victim.pid and c, what="edge restarted")
    assert replacement.last_exit.exit_kind is ExitKind.KILLED
    assert edge_of(rt).port == port
    for seq in range(5):
        client.sendto(msgpack.packb(seq), ("127.0.0.1", port))
    rt.wait_for(lambda: counts(rt).datagrams == 5, what="datagrams after the restart")
