"""The framework's Prometheus families, built from the observer's latest snapshot at scrape time.

``TreeCollector`` is a custom collector (``prometheus_client``'s ``Collector`` protocol): a scrape
reads the state under the observer's lock and never talks to the actor system. Counters that an
actor's restart would reset (messages handled) are kept monotonic by ``ObservedState``. A system's
own families (``SystemSpec.metrics``) are fetched with each snapshot and served as they were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from systems.observer.state import ObservedState


class TreeCollector:
    def __init__(self, state: ObservedState, lock: threading.Lock,
                 extra: Callable[[], Iterable[Metric]] = lambda: ()) -> None:
        self.state = state
        self.lock = lock
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._families()
            yield from list(self.extra())

    def _families(self) -> Iterator[Metric]:
        s = self.state
        restarts = CounterMetricFamily("ptr_actor_restarts", "Restarts of the child at a path",
                                       labels=["path"])
        exits = CounterMetricFamily("ptr_actor_exits", "Exits of the child at a path, by reason",
                                    labels=["path", "reason"])
        handled = CounterMetricFamily("ptr_actor_messages_handled",
                                      "Messages handled by the actor at a path (all incarnations)",
                                      labels=["path"])
        mailbox = GaugeMetricFamily("ptr_actor_mailbox_depth",
                                    "Messages waiting in the actor's mailbox (where known)",
                                    labels=["path"])
        up = GaugeMetricFamily("ptr_actor_up", "1 while the child at a path runs", labels=["path"])
        budget = GaugeMetricFamily("ptr_supervisor_restart_budget_left",
                                   "Restarts a supervisor may still make in its window",
                                   labels=["path"])
        cpu = CounterMetricFamily("ptr_actor_process_cpu_seconds",
                                  "CPU time of the actor's OS process", labels=["path"])
        pss = GaugeMetricFamily("ptr_actor_process_pss_bytes",
                                "Proportional set size of the actor's OS process", labels=["path"])
        for v in s.views:
            if v.more:
                continue
            if v.depth:
                restarts.add_metric([v.path], v.restarts)
                up.add_metric([v.path], 1.0 if v.status == "running" else 0.0)
            total = s.handled_total(v)
            if total is not None:
                handled.add_metric([v.path], total)
            if v.queued is not None:
                mailbox.add_metric([v.path], v.queued)
            if v.restart_budget_left is not None:
                budget.add_metric([v.path], v.restart_budget_left)
            sample = s.process_of(v)
            if sample is not None:
                cpu.add_metric([v.path], sample.cpu_seconds)
                if sample.pss_bytes is not None:
                    pss.add_metric([v.path], sample.pss_bytes)
        for (path, reason), count in sorted(s.exits.items()):
            exits.add_metric([path, reason], count)
        nodes_up = GaugeMetricFamily("ptr_nodes_up", "Nodes of the convention that answer "
                                     "(this node included)")
        nodes_up.add_metric([], 1 + sum(1 for n in s.nodes.values() if n.status == "up"))
        node_up = GaugeMetricFamily("ptr_node_up", "1 while the node answers, 0 once lost",
                                    labels=["node"])
        for n in s.nodes.values():
            node_up.add_metric([n.name], 1.0 if n.status == "up" else 0.0)
        lights = GaugeMetricFamily("ptr_light_actors", "Light actors running in each host",
                                   labels=["host"])
        for host, count in s.light_hosts().items():
            lights.add_metric([host], count)
        yield from (restarts, exits, handled, mailbox, up, budget, cpu, pss, nodes_up, node_up,
                    lights)
