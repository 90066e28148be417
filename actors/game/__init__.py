"""The online game's actors (System 3). Read ``game_server`` first (the hot path and its rooms),
then ``game_lobby`` (HTTP: accounts, leaderboard, chat) and ``game_match`` (the queue).

Modules: ``game_room`` (the simulation, plain objects), ``game_engine`` (UDP + tick loop on one
thread), ``game_server`` (the process actor and its supervised room actors), ``game_auth``
(passwords and session tokens), ``game_lobby``, ``game_match``, ``game_bots`` (the bot client and
its process fleet) and ``game_bench`` (the naive one-message-per-input comparison).
"""

from actors.game.auth import Passwords, SessionTokens
from actors.game.bench import NaiveInputSource, NaiveRoom
from actors.game.lobby import ChatRules, Lobby, LobbyService
from actors.game.match import Matchmaker, MatchQueue
from actors.game.room import RoomConfig, RoomSim, RoomSnapshot
from actors.game.server import GameServer, RoomActor

__all__ = ["ChatRules", "GameServer", "Lobby", "LobbyService", "MatchQueue", "Matchmaker",
           "NaiveInputSource", "NaiveRoom", "Passwords", "RoomActor", "RoomConfig", "RoomSim",
           "RoomSnapshot", "SessionTokens"]
