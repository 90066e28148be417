"""Prometheus metrics of one HTTP edge, in the edge's own registry.

A per-app ``CollectorRegistry`` (not the process-global one) lets two edges, or two tests, live in
one process without "duplicated timeseries" errors. Label children are cached because
``labels()`` takes a lock and builds a key on every call, which shows at tens of thousands of
requests a second.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Sub-millisecond to seconds: a validated batch answers in ~1 ms, a reply through an actor in a few.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)


class EdgeMetrics:
    """Requests by route and status, records accepted, requests in flight, latency by route."""

    def __init__(self, registry: CollectorRegistry, bridge_in_flight: Callable[[], float]) -> None:
        self.registry = registry
        self._requests = Counter("ptr_edge_http_requests", "HTTP requests answered, by route and status",
                                 ["route", "status"], registry=registry)
        self._accepted = Counter("ptr_edge_http_records_accepted",
                                 "Records accepted and handed to the actor side", ["route"],
                                 registry=registry)
        self.in_flight = Gauge("ptr_edge_http_requests_in_flight",
                               "HTTP requests being handled now", registry=registry)
        bridge_gauge = Gauge("ptr_edge_bridge_in_flight",
                             "Items queued to, or awaiting an answer from, the actor side",
                             registry=registry)
        bridge_gauge.set_function(bridge_in_flight)
        self._latency = Histogram("ptr_edge_http_request_duration_seconds",
                                  "Time from the request reaching the app to its answer, by route",
                                  ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._accepted_children: dict[str, Counter] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        counter = self._request_children.get((route, status))
        if counter is None:
            counter = self._request_children[(route, status)] = self._requests.labels(route, str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self._latency.labels(route)
        histogram.observe(seconds)

    def accepted(self, route: str, count: int) -> None:
        counter = self._accepted_children.get(route)
        if counter is None:
            counter = self._accepted_children[route] = self._accepted.labels(route)
        counter.inc(count)
