"""The edges: plain asyncio components (no Thespian) that take traffic in and hand it to one actor,
and the supervised actors that host them. Read ``bridge`` first (the loop-thread/actor-thread
hand-off), then ``http_app`` and ``udp``; the actors are ``http_edge.HttpEdgeActor`` and
``udp_edge.UdpEdgeActor`` (imported from their modules: they are Thespian actors).

``loop_thread`` runs the edges' loop beside the hosting actor, ``http_server`` serves an app built by
``http_app`` (with ``tls`` for HTTPS; ``openapi`` documents its routes), and ``udp`` reads datagrams in batches. Failure rules are in
each module's docstring: bad input is counted or answered, never raised into the host.
"""

from actors.edges.bridge import BridgeClosedError, EdgeBridge, Pending, SaturatedError
from actors.edges.http_app import (
    ANSWER_LATER,
    HTTP_STATUS,
    METRICS_KEY,
    OPENAPI_PATH,
    Answer,
    Inbound,
    Route,
    build_app,
)
from actors.edges.openapi import ErrorBody, openapi_document, refusals_of
from actors.edges._ratelimit import RateLimitedLog
from actors.edges.http_server import HttpServer
from actors._loop_thread import LoopThread
from actors.edges.tls import client_context, context_from_files, ensure_self_signed, self_signed_context
from actors.edges.udp import Address, UdpEdge, UdpStats

__all__ = [
    "ANSWER_LATER",
    "HTTP_STATUS",
    "METRICS_KEY",
    "OPENAPI_PATH",
    "ErrorBody",
    "Address",
    "Answer",
    "BridgeClosedError",
    "EdgeBridge",
    "HttpServer",
    "Inbound",
    "LoopThread",
    "Pending",
    "RateLimitedLog",
    "Route",
    "SaturatedError",
    "UdpEdge",
    "UdpStats",
    "build_app",
    "openapi_document",
    "refusals_of",
    "client_context",
    "context_from_files",
    "ensure_self_signed",
    "self_signed_context",
]
