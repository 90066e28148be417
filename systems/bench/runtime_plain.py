"""The baseline of ``ptr bench runtime``'s transport figure: the same raw credit-window sender and
acking sink on Thespian's transport as shipped (no bound sockets, no frame MAC), in a process of its
own. ``python -m systems.bench.runtime_plain COUNT WINDOW`` prints one JSON object."""

from __future__ import annotations

import json
import sys

from actors.system import plain_transport
from actors.testing.bench import RawSink, RawSource
from protocols.bench import BenchDone, BenchRun
from supervisors.spec import SupervisorSpec
from systems.runtime import ActorRuntime


def measure(count: int, window: int) -> float:
    plain_transport()
    with ActorRuntime(SupervisorSpec(), base="multiproc") as rt:
        source, sink = rt.create_actor(RawSource), rt.create_actor(RawSink)
        rt.ask_plain(source, BenchRun(target=sink, count=min(500, count), window=window),
                     BenchDone, 120)  # warm up, as the authenticated run does
        done = rt.ask_plain(source, BenchRun(target=sink, count=count, window=window),
                            BenchDone, 120)
        return float(count / done.elapsed_s)


if __name__ == "__main__":
    print(json.dumps({"msgs_per_s": measure(int(sys.argv[1]), int(sys.argv[2]))}))
