"""The ping system: the pinger reaches the ponger by name, and keeps reaching it across the
ponger's restarts (its ``Peer`` finds the new address)."""

from __future__ import annotations

from collections.abc import Callable

from protocols.ping import PingReport, PingStats
from protocols.supervision import ChaosCrash
from systems.ping import SYSTEM, PingSettings
from systems.runtime import ActorRuntime


def report(rt: ActorRuntime) -> PingReport:
    answer = rt.ask("pinger", PingStats(), 5)
    assert isinstance(answer, PingReport)
    return answer


def test_the_pinger_is_answered_and_goes_on_after_the_ponger_restarts(
        make_runtime: Callable[..., ActorRuntime], base: str) -> None:
    settings = SYSTEM.settings(overrides={"interval_s": 0.05})
    assert isinstance(settings, PingSettings)
    rt = make_runtime(SYSTEM.tree(settings), base=base, name="ping")
    rt.wait_for(lambda: report(rt).answered >= 3, what="three answers")
    rt.tell("ponger", ChaosCrash())
    rt.wait_for(lambda: rt.which_children().children[0].restarts == 1, what="ponger restarted")
    after = report(rt).answered
    rt.wait_for(lambda: report(rt).answered >= after + 3, what="answers from the new ponger")
    assert report(rt).incarnation == 1  # the pinger itself never restarted
