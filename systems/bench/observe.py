"""The observer as a benchmark sees it: ``ptr observe`` attached to the benchmark's running system
from a helper process, taking a snapshot a second and scraped once a second (as Prometheus
would), so a benchmark can run the same load with observing off and on and report the cost.

``observing(rt)`` starts it and yields its pid (to count its CPU beside the system's); the helper
prints one JSON line once it has served its first scrape.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
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
        helper.line(60)
        yield helper.process.pid


def _scrape_forever(url: str) -> None:
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        time.sleep(SCRAPE_EVERY_S)  # a scraper's interval, not synchronisation


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
        print(json.dumps({"observer": observer.url}), flush=True)
        threading.Thread(target=_scrape_forever, args=(observer.metrics_url,), daemon=True).start()
        while True:
            runtime.idle(0.2)
            observer.service()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
