"""The edges' typed arguments: a mistake in an edge's child spec (a zero window, a port out of
range, a misspelt key, a missing target) is a ``SpecError`` naming the child and the field when the
spec is built, not a crash loop once the edge starts; subclasses (the smart home's query API, the
game's lobby, the MQTT edge) extend the edge's model with their own fields and defaults."""

from __future__ import annotations

import pytest

from actors.edges import Answer, Route
from actors.edges.http_edge import HttpEdgeActor, HttpEdgeArgs
from actors.edges.udp_edge import DatagramSink, UdpEdgeActor
from actors.smart_home.api import SmartHomeApiArgs
from actors.smart_home.mqtt import MqttIngestEdge
from protocols.errors import SpecError
from protocols.storage import SensorReading
from supervisors.spec import ChildSpec

ROUTE = Route("POST", "/readings", list[SensorReading], Answer.REPLY)


@pytest.mark.parametrize("actor, args, field", [
    (HttpEdgeActor, {"routes": [ROUTE], "target": "t", "window": 0}, "window"),
    (HttpEdgeActor, {"routes": [ROUTE], "target": "t", "port": 70000}, "port"),
    (HttpEdgeActor, {"routes": [ROUTE], "target": "t", "windw": 4}, "windw"),
    (HttpEdgeActor, {"routes": [ROUTE], "target": "t", "linger_s": -1}, "linger_s"),
    (UdpEdgeActor, {"max_batch": 10}, "target"),
    (UdpEdgeActor, {"target": "sink", "interval_s": 0}, "interval_s"),
    (DatagramSink, {"keep_last": -1}, "keep_last"),
    (MqttIngestEdge, {"target": "ingest", "receive_maximum": 0}, "receive_maximum"),
])
def test_a_bad_edge_arg_is_a_spec_error_naming_the_child_and_the_field(
        actor: type, args: dict, field: str) -> None:
    with pytest.raises(SpecError) as refused:
        ChildSpec("edge", actor, args)
    assert refused.value.child_id == "edge"
    assert f"arg '{field}'" in str(refused.value)


def test_the_edge_has_one_default_per_setting_and_a_subclass_overrides_it_in_its_model() -> None:
    edge = HttpEdgeArgs(routes=[ROUTE], target="t")
    assert (edge.window, edge.max_in_flight, edge.host, edge.port) == (4, 256, "127.0.0.1", 0)
    fields = SmartHomeApiArgs.model_fields
    assert fields["window"].default == 16 and fields["max_body_bytes"].default == 1 << 16
    assert "house" in fields and fields["house"].is_required()


def test_the_smart_home_and_game_trees_pass_their_actors_models() -> None:
    from systems.game import SYSTEM as GAME
    from systems.smart_home import SYSTEM as HOME

    for system, overrides in ((GAME, {"token_secret": "x" * 32}), (HOME, {"mqtt": True, "simulate": True})):
        tree = system.tree(system.settings(overrides=overrides))
        assert tree.children
