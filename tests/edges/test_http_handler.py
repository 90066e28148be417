"""A route answered by the hosting actor (``Route.handler``): at once, with a refusal, or later
(``ANSWER_LATER``), settling ``inbound.pending`` from a later message of the actor's own, as the
smart home's room statistics do after asking the analyzers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from actors.edges import ANSWER_LATER, Answer, Inbound, Route
from actors.edges.http_edge import HttpEdgeActor
from protocols.edges import EdgeInfo, GetEdgeInfo
from protocols.errors import RefusalKind, RefusedError
from protocols.message import Message
from supervisors.spec import ChildSpec, SupervisorSpec
from tests.support.clients import call, meanwhile


class WordPath(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    word: str


class SettleNow(Message):
    """The edge to itself, once per drain: answer what the handlers left for later."""


def echo_later(host: LaterEdge, inbound: Inbound) -> Any:
    word = inbound.params.word
    if word == "taken":
        raise RefusedError("that word is taken", refusal=RefusalKind.CONFLICT, word=word)
    host.waiting.append((word, inbound.pending))
    return ANSWER_LATER


def echo_now(host: LaterEdge, inbound: Inbound) -> Any:
    return {"word": inbound.params.word, "later": False}


class LaterEdge(HttpEdgeActor):
    """Answers ``/later/{word}`` in a later message, ``/now/{word}`` at once."""

    waiting: list[tuple[str, Any]]

    def routes(self) -> list[Route]:
        return [Route("GET", "/later/{word}", answer=Answer.REPLY, params=WordPath,
                      handler=echo_later, refuses=(RefusalKind.CONFLICT, RefusalKind.NOT_FOUND)),
                Route("GET", "/now/{word}", answer=Answer.REPLY, params=WordPath,
                      handler=echo_now)]

    def on_start(self) -> None:
        self.waiting = []
        super().on_start()

    def handled_drain(self) -> None:
        if self.waiting:
            self.send(self.myAddress, SettleNow())

    def receiveMsg_SettleNow(self, msg: SettleNow, sender: Any) -> None:
        waiting, self.waiting = self.waiting, []
        for word, pending in waiting:
            if word == "gone":
                pending.fail(RefusedError("no such word", refusal=RefusalKind.NOT_FOUND))
            else:
                pending.resolve({"word": word, "later": True})


def test_a_handler_answers_now_refuses_or_answers_later_from_another_message(
        make_runtime: Any) -> None:
    rt = make_runtime(SupervisorSpec(children=[ChildSpec("http", LaterEdge, {"port": 0},
                                                         name="later-edge")]))
    info = rt.ask("later-edge", GetEdgeInfo())
    assert isinstance(info, EdgeInfo)

    def get(path: str) -> Any:
        return meanwhile(rt, lambda: call(info.url + path))

    later = get("/later/hello")
    assert (later.status, later.json) == (200, {"word": "hello", "later": True})
    assert get("/now/hello").json == {"word": "hello", "later": False}
    taken = get("/later/taken")
    assert (taken.status, taken.json["refusal"], taken.json["word"]) == (409, "conflict", "taken")
    gone = get("/later/gone")
    assert (gone.status, gone.json["error"]) == (404, "no such word")
    documented = meanwhile(rt, lambda: call(info.url + "/openapi.json")).json
    assert {"200", "404", "409"} <= set(documented["paths"]["/later/{word}"]["get"]["responses"])
