"""``CarClient``: a subscriber (and setter) on the car's LAN, talking to BOTH members of the pair.

It subscribes to every member from one socket and merges their answers: a row is new when its
sample is newer (timestamp, then sequence) than the last one kept from the same source for its
path, or when the signal's state changed. Per source, because a failover hands the value to a
sensor whose last sample may be a little older than the failed owner's last one. Both members see
the same datagrams, so while both live the client sees each sample twice and keeps it once; when
one dies the other's copy is already there. ``updates`` subscribes again every ``renew_s``: that
renews the lease, and a restarted member learns of its subscribers so.

Plain blocking sockets, no actor: used by tests and the benchmark.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Sequence
from typing import Any

from protocols.car import SignalValue, decode_client_reply, encode_client_op

__all__ = ["CarClient", "Update"]

Update = tuple[float, str, SignalValue]  # (received at, from member, value)


class CarClient:
    def __init__(self, holders: Sequence[tuple[str, int]], *, host: str = "127.0.0.1",
                 renew_s: float = 5.0) -> None:
        self.holders = [tuple(h) for h in holders]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind((host, 0))
        self.seen: dict[tuple[str, str | None], tuple[float, int]] = {}  # newest per source
        self.states: dict[str, str] = {}
        self.tags = itertools.count(1)
        self.subscription: dict[str, Any] | None = None
        self.renew_s = renew_s
        self.renewed_at = 0.0
        self.pending: list[dict[str, Any]] = []  # non-val answers read while waiting for values

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> CarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------------

    def send(self, op: str, holder: int | None = None, **fields: Any) -> int:
        tag = next(self.tags)
        data = encode_client_op(op, tag=tag, **fields)
        for index, address in enumerate(self.holders):
            if holder is None or holder == index:
                self.sock.sendto(data, address)
        return tag

    def subscribe(self, paths: list[str], rate_hz: float = 0.0) -> None:
        """Subscribe on every member; the current values come back as the first updates."""
        self.subscription = {"paths": paths, "rate_hz": rate_hz}
        self.renew()

    def renew(self) -> None:
        """Subscribe again on every member (``updates`` does it every ``renew_s``): renews the
        lease, and a member that restarted since learns of this subscriber."""
        if self.subscription is not None:
            self.renewed_at = time.monotonic()
            self.send("sub", **self.subscription)

    def request(self, op: str, holder: int = 0, timeout_s: float = 2.0,
                **fields: Any) -> dict[str, Any]:
        """One request to one member, its answer (``val``, ``ack`` or ``err``); TimeoutError."""
        tag = self.send(op, holder=holder, **fields)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {op} from {self.holders[holder]}")
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = decode_client_reply(data)
            if reply.get("tag") == tag:
                return reply
            self.pending.append(reply)

    def get(self, paths: list[str], holder: int = 0) -> list[SignalValue]:
        reply = self.request("get", holder, paths=paths)
        if reply["op"] != "val":
            raise LookupError(reply)
        return [SignalValue.from_row(row) for row in reply["values"]]

    def set(self, path: str, value: Any, holder: int = 0) -> dict[str, Any]:
        return self.request("set", holder, path=path, value=value)

    # --- updates -----------------------------------------------------------------------------

    def updates(self, timeout_s: float) -> list[Update]:
        """The new rows that arrive within ``timeout_s`` (returns as soon as some did)."""
        if self.subscription is not None and time.monotonic() - self.renewed_at > self.renew_s:
            self.renew()
        out: list[Update] = []
        for reply in self.pending:
            out.extend(self._merge(reply, time.time()))
        self.pending = []
        deadline = time.monotonic() + timeout_s
        self.sock.settimeout(max(0.0, timeout_s))
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except (TimeoutError, BlockingIOError):
                return out
            out.extend(self._merge(decode_client_reply(data), time.time()))
            self.sock.settimeout(0.0 if out else max(0.0, deadline - time.monotonic()))

    def _merge(self, reply: dict[str, Any], now: float) -> list[Update]:
        if reply.get("op") != "val":
            return []
        member = str(reply.get("member", "?"))
        out = []
        for row in reply["values"]:
            value = SignalValue.from_row(row)
            key = (value.path, value.source)
            sample = (value.ts, value.seq)
            if self.seen.get(key, (-1.0, -1)) >= sample and \
                    self.states.get(value.path) == value.state:
                continue  # the other member's copy, or older
            self.seen[key] = max(sample, self.seen.get(key, sample))
            self.states[value.path] = value.state
            out.append((now, member, value))
        return out
