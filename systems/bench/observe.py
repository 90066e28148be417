"""The observer as a benchmark sees it: ``ptr observe`` attached to the benchmark's running system
from a helper process and scraped once a second (as a Prometheus server would, from the
benchmark's own process: the scraper is not part of the system), so a benchmark can run the same
load with observing off and on and report the cost. No page is open, so the observer asks the
tree every ``idle_snapshot_every_s`` (``systems.observer``).

``observing(rt)`` starts it and yields its pid (to count its CPU beside the system's); the helper
prints one JSON line once it has served its first scrape.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from systems.bench._helper import BenchHelper
from systems.runfile import encode_address
from systems.runtime import ActorRuntime, cookie_hex

HELPER_MODULE = "systems.bench.observe"
SCRAPE_EVERY_S = 1.0


@contextmanager
def observing(rt: ActorRuntime) -> Iterator[int]:
    with BenchHelper(HELPER_MODULE, rt.admin_port, encode_address(rt.root), rt.name,
                     cookie_hex()) as helper:
        metrics_url = helper.line(60)["metrics"]
        done = threading.Event()
        scraper = threading.Thread(target=_scrape_until, args=(metrics_url, done), daemon=True)
        scraper.start()
        try:
            yield helper.process.pid
        finally:
            done.set()
            scraper.join(15)


def _scrape_until(url: str, done: threading.Event) -> None:
    while not done.wait(SCRAPE_EVERY_S):  # a scraper's interval, not synchronisation
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
        except OSError:  # the observer is stopping with the run
            return


def _serve(admin_port: int, root: str, name: str, cookie: str) -> None:
    from systems import runfile
    from systems.observer import Observer
    from systems.runtime import set_cookie
    set_cookie(cookie)
    info = runfile.RunInfo(kind="system", name=name, admin_port=admin_port, pid=os.getpid(),
                           admin_sid=0, node="", root=root)
    runtime = ActorRuntime.attach(admin_port, info.root_address(), name=name)
    with Observer(runtime) as observer:
        observer.service()
        urllib.request.urlopen(observer.metrics_url, timeout=10).read()
        print(json.dumps({"observer": observer.url, "metrics": observer.metrics_url}), flush=True)
        while True:
            runtime.idle(0.2)
            observer.service()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
