"""The browser client in headless Chromium: two people log in on the lobby's page, queue, and play
in one room with two bots (the browsers through the WebSocket edge, the bots over UDP); keys move
them, scores appear, chat goes from one page to the other, and a spectator watches the room."""

from __future__ import annotations

from typing import Any

import pytest

from actors.game.bots import BotFleet
from protocols.game import LobbyAddress, LobbyInfo
from systems.game import SYSTEM
from tests.support.browser import chromium_page
from tests.support.game import Http, settings

pytestmark = pytest.mark.multiproc


def _log_in_and_play(page: Any, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#name", name)
    page.fill("#password", "password-" + name)
    page.click("#register")
    page.wait_for_function("window.game.playerId > 0", timeout=10_000)
    page.click("#queue")


def _me(page: Any) -> dict[str, int]:
    return page.evaluate("""() => { const g = window.game;
        for (let i = 0; i + 3 < g.players.length; i += 4)
          if (g.players[i] === g.playerId) return {x: g.players[i+1], y: g.players[i+2]};
        return null; }""")


def test_two_browser_players_and_two_bots_play_one_room(make_runtime, tmp_path) -> None:
    # coins and players spawn near the middle, within the pickup radius: scores appear at once
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, room_size=4, rooms_per_server=2,
                                           fill_wait_s=60, round_s=60, pickup_radius=490)),
                      base="multiproc")
    Http(rt)
    lobby = rt.ask("lobby", LobbyInfo(), 10)
    assert isinstance(lobby, LobbyAddress)
    url = lobby.url + "/"
    fleet = BotFleet(lobby.url, 2, processes=1, snapshot_every=2).start()
    try:
        with chromium_page() as first:
            # the page's Content-Security-Policy forbids eval, which Playwright's
            # wait_for_function needs: the test's contexts bypass it
            browser = first.context.browser
            errors: list[str] = []
            first.on("console", lambda m: m.type == "error" and errors.append(m.text))
            first.goto(url)  # under the page's own policy: its scripts run, nothing is refused
            assert first.evaluate("window.game.state") == "lobby"
            first.evaluate("() => new Promise(r => setTimeout(r, 300))")  # a panels refresh
            assert errors == [], errors
            ann = browser.new_context(bypass_csp=True).new_page()
            bob = browser.new_context(bypass_csp=True).new_page()
            _log_in_and_play(ann, url, "ann")
            _log_in_and_play(bob, url, "bob")
            for page in (ann, bob):
                page.wait_for_function("window.game.state === 'playing' && "
                                       "window.game.players.length === 16", timeout=20_000)
            room = ann.evaluate("window.game.roomId")
            assert bob.evaluate("window.game.roomId") == room, "both browsers in one room"
            ids = ann.evaluate("window.game.players.filter((v, i) => i % 4 === 0)")
            mine = {ann.evaluate("window.game.playerId"), bob.evaluate("window.game.playerId")}
            assert mine < set(ids) and len(ids) == 4, "and two bots with them"

            moves = []
            for page, (low, high) in ((ann, ("ArrowLeft", "ArrowRight")),
                                      (bob, ("ArrowUp", "ArrowDown"))):
                start = _me(page)
                axis = "x" if page is ann else "y"
                key, sign = (high, 1) if start[axis] < 500 else (low, -1)
                page.focus("#arena")
                page.keyboard.down(key)
                moves.append((page, axis, sign, start[axis], key))
            for page, axis, sign, before, key in moves:
                page.wait_for_function(
                    f"(() => {{ const g = window.game; for (let i = 0; i + 3 < g.players.length; "
                    f"i += 4) if (g.players[i] === g.playerId) return "
                    f"{sign} * (g.players[i + {1 if axis == 'x' else 2}] - {before}) >= 50; "
                    f"return false; }})()", timeout=10_000)
                page.keyboard.up(key)

            ann.wait_for_function("document.querySelectorAll('#scores tr').length === 4 && "
                                  "[...document.querySelectorAll('#scores tr td:nth-child(2)')]"
                                  ".some(td => Number(td.textContent) > 0)", timeout=10_000)
            names = ann.inner_text("#scores")
            assert "ann" in names and "bob" in names, "the scores name the players"

            ann.fill("#chat-text", "hello from ann")
            ann.click("#chat-form button")
            bob.wait_for_function("document.querySelector('#chat-lines').textContent"
                                  ".includes('ann: hello from ann')", timeout=10_000)

            watcher = ann.context.new_page()
            watcher.goto(f"{url}#spectate={room}")
            watcher.wait_for_function("window.game.state === 'spectating' && "
                                      "window.game.snapshots > 0 && "
                                      "window.game.players.length === 16", timeout=10_000)
            assert watcher.evaluate("window.game.token") == "", "a spectator needs no login"
    finally:
        fleet.stop(timeout_s=10)
