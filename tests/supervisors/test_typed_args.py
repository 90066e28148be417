"""Typed actor arguments: an actor that declares an ``Args`` model has every child spec naming it
checked as the spec is built, so a bad value is a ``SpecError`` naming the child and the field
before anything starts (never a crash loop in ``on_start``)."""

from __future__ import annotations

import pytest

from actors.game.match import Matchmaker
from actors.game.server import GameServer, GameServerArgs
from actors.ping import Pinger, PingerArgs
from protocols.errors import SpecError
from supervisors.spec import ChildSpec
from systems.game import SYSTEM as GAME
from systems.game import GameSettings


@pytest.mark.parametrize("args, field", [
    ({"target": "ponger", "interval_s": -1}, "interval_s"),
    ({"interval_s": 0.5}, "target"),
    ({"target": "ponger", "intervall_s": 0.5}, "intervall_s"),
    ({"target": 7}, "target"),
])
def test_a_bad_arg_is_a_spec_error_naming_the_child_and_the_field(args: dict, field: str) -> None:
    with pytest.raises(SpecError) as refused:
        ChildSpec("pinger", Pinger, args)
    assert refused.value.child_id == "pinger"
    assert f"arg '{field}'" in str(refused.value)


def test_good_args_build_and_read_back_with_their_one_default() -> None:
    spec = ChildSpec("pinger", Pinger, {"target": "ponger"})
    assert PingerArgs.model_validate(dict(spec.args)).interval_s == 1.0


def test_the_game_servers_args_default_as_the_system_does() -> None:
    """One default per setting: a game server started without ``snapshot_every`` behaves as the
    system's default says (they used to differ: 1 in the actor, 2 in the system)."""
    assert GameServerArgs(lobby="l", matchmaker="m", token_secret="s" * 16).snapshot_every == \
        GameSettings().snapshot_every


def test_the_whole_game_tree_is_checked_as_it_is_built() -> None:
    tree = GAME.tree(GAME.settings(overrides={"token_secret": "x" * 32}))
    assert tree.children  # every child spec in it passed its actor's Args
    with pytest.raises(SpecError, match="room_size"):
        ChildSpec("matchmaker", Matchmaker, {"servers": [["game-1", "rooms-1"]], "room_size": 0})
    with pytest.raises(SpecError, match="token_secret"):
        ChildSpec("game-1", GameServer, {"lobby": "l", "matchmaker": "m", "token_secret": "short"})
