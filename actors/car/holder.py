"""``SignalHolder``: one member of the active pair that owns the car's live state.

The hot path is one process and one thread: the holder owns its UDP socket and Thespian wakes it
when the socket is readable (``watch_fds``; under simpleSystemBase a timer polls instead). Each
wake-up reads what the socket holds (up to ``reads_per_wake``), decodes each datagram, applies it
to the ``SignalTree`` and, once the socket is drained, sends every subscriber whose interval has
passed one datagram with its changed values. No broker, no gateway, no thread hand-over, no
Thespian message per datagram: a sensor's datagram reaches a subscriber through one ``recvfrom``,
a few dict lookups and one ``sendto``.

Both members receive every datagram (each binds its own port and the sensors send to both), so
both hold the same state at every moment, and a subscriber subscribes to both and keeps the newest
sample (``actors.car.client.CarClient``): killing a member leaves no gap at all on the subscriber's
side beyond the datagrams in flight. Why not SO_REUSEPORT: the kernel hashes each datagram to ONE
of the sockets sharing a port, which splits the stream instead of duplicating it. A restarted
member asks the other for a ``TreeSnapshot`` (values with their source, timestamp and age; each
sensor's last sequence) and takes the values it has not yet refreshed from its own datagrams.

History: each accepted sample becomes a row in a buffer; every ``history_flush_s`` the holder
sends the buffer to the store (a ``Batcher``) as one ``StoreRows``, with at most
``history_window`` batches unanswered. The hot path never waits for the database: when the store is
slow the window stays full, rows wait in the buffer, and at each flush the rows beyond
``history_buffer_rows`` are shed, oldest first, and counted (``history_shed``). Both members send
their rows; a row's ``message_id`` (sensor, sequence, timestamp) makes the second copy a no-op in
the database, so history survives either member's death.

Failure rules: a bad datagram (undecodable, unknown sensor, out of range, stale sequence, unknown
op) is counted and dropped. A client's bad request gets an ``err`` datagram with a refusal kind.
If the socket cannot be bound, ``on_start`` raises and the start fails.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from pydantic import Field

from actors.base import Actor
from actors.car.tree import SignalTree, Subscriptions, UnknownSignalError
from actors.car.vss import default_sensors, load_vspec, synthetic_specs
from actors.edges import RateLimitedLog
from protocols.car import (
    CarStats,
    ClientOp,
    GetCarStats,
    GetSignals,
    GetTreeSnapshot,
    PeerSet,
    SetSignal,
    SetSignalResult,
    SignalValues,
    TreeSnapshot,
    decode_datagram,
    encode_values,
)
from protocols.errors import InvalidMessageError
from protocols.message import ActorArgs
from protocols.storage import Stored, StoreRows
from protocols.supervision import ExitReason

__all__ = ["HISTORY_COLUMNS", "SignalHolder", "SignalHolderArgs", "build_tree_of"]

log = logging.getLogger("ptr.car.holder")

RCVBUF_BYTES = 8 * 1024 * 1024
MAX_DATAGRAM = 65535
ROWS_PER_DATAGRAM = 200  # a ``val`` answer stays well under 64 KiB
POLL_S = 0.002  # simpleSystemBase: no fd watch, the sweep timer reads the socket
HISTORY_COLUMNS = ("path", "sensor", "seq", "ts", "value", "owned")


class DrainTick:
    """Timer message: sweep deadlines, send what is due, read the socket if not watched."""


class HistoryTick:
    """Timer message: send the history buffer to the store."""


class SignalHolderArgs(ActorArgs):
    member: str                      # "a" or "b": which member this is (in stats and answers)
    peer: str | None = None          # the other member's registered name
    store: str | None = None         # the history store's registered name (None: no history)
    udp_host: str = "127.0.0.1"
    udp_port: int = Field(default=0, ge=0, le=65535)
    vspec: str | None = None         # a vspec file (None: the one shipped with the package)
    extra_signals: int = Field(default=0, ge=0)  # synthetic Vehicle.Diagnostics.ChannelN
    redundancy: int = Field(default=2, ge=1)
    deadline_periods: float = Field(default=3.0, gt=0)
    sweep_s: float = Field(default=0.002, gt=0)
    reads_per_wake: int = Field(default=512, ge=1)
    lease_s: float = Field(default=30.0, gt=0)
    max_subscribers: int = Field(default=256, ge=1)
    history_flush_s: float = Field(default=0.1, gt=0)
    history_window: int = Field(default=2, ge=1)
    history_buffer_rows: int = Field(default=50_000, ge=1)
    history_timeout_s: float = Field(default=10.0, gt=0)
    sync_timeout_s: float = Field(default=2.0, gt=0)


def build_tree_of(vspec: str | None, extra_signals: int, redundancy: int,
                  deadline_periods: float) -> SignalTree:
    """The tree a holder (or the bare baseline, or the simulator) builds from its settings."""
    specs = load_vspec(vspec) + synthetic_specs(extra_signals)
    return SignalTree(specs, default_sensors(specs, redundancy),
                      deadline_periods=deadline_periods)


class SignalHolder(Actor):
    """Args: ``SignalHolderArgs``. See the module docstring."""

    Args = SignalHolderArgs

    def on_start(self) -> None:
        args: SignalHolderArgs = self.typed_args()
        self.settings = args
        self.member = args.member
        self.tree = build_tree_of(args.vspec, args.extra_signals, args.redundancy,
                                  args.deadline_periods)
        self.subs = Subscriptions(args.max_subscribers)
        self.received = self.undecodable = self.bad_ops = 0
        self.window_start = self.clock()
        self.applied_at_window_start = 0
        self.next_expiry = 0.0
        self.history: list[dict[str, Any]] = []
        self.history_sent = self.history_stored = self.history_shed = self.history_failed = 0
        self.history_in_flight = 0
        self.synced = 0
        self.bad_log = RateLimitedLog(log)
        sock = socket.socket(socket.AF_INET6 if ":" in args.udp_host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.setblocking(False)
            sock.bind((args.udp_host, args.udp_port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.udp_port = int(sock.getsockname()[1])
        self.peer_handle = self.peer(args.peer) if args.peer else None
        self.store = self.peer(args.store) if args.store else None
        if self.can_watch_fds:
            self.watch_fds([sock.fileno()])
        self.start_timer(args.sweep_s if self.can_watch_fds else min(args.sweep_s, POLL_S),
                         DrainTick(), repeat=True)
        if self.store is not None:
            self.start_timer(args.history_flush_s, HistoryTick(), repeat=True)
        if self.peer_handle is not None:
            self.peer_handle.request(GetTreeSnapshot(), self.restore_from_peer,
                                     timeout_s=args.sync_timeout_s,
                                     on_unavailable=lambda: None)
        log.info("car holder %s reading udp://%s:%d", self.member, args.udp_host, self.udp_port)

    def on_stop(self, reason: ExitReason) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None:
            self.watch_fds(None)
            sock.close()

    # --- the hot path -------------------------------------------------------------------------

    def receiveMsg_WatchMessage(self, msg: Any, sender: Any) -> None:
        self.drain()

    def drain(self) -> None:
        """Read what the socket holds, apply it, then tell the subscribers that are due."""
        sock, tree, subs = self.sock, self.tree, self.subs
        recvfrom, apply, changed = sock.recvfrom, tree.apply, subs.changed
        history = self.history if self.store is not None else None
        now = self.clock()
        received = undecodable = 0
        for _ in range(self.settings.reads_per_wake):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an ICMP error queued on the socket; the next read is fine
            received += 1
            try:
                item = decode_datagram(data)
            except InvalidMessageError as exc:
                undecodable += 1
                self.bad_log.warning("car holder %s dropped a datagram from %s: %s",
                                     self.member, addr, exc)
                continue
            if isinstance(item, ClientOp):
                self.client_op(item, addr, now)
                continue
            sensor_id, seq, ts, value = item
            accepted_before = tree.accepted
            signal = apply(sensor_id, seq, ts, value, now)
            if signal is not None and signal.watchers:
                changed(signal)
            if history is not None and tree.accepted != accepted_before:
                history.append({"message_id": f"{sensor_id}-{seq}-{ts!r}",
                                "path": tree.sensors[sensor_id].signal.path, "sensor": sensor_id,
                                "seq": seq, "ts": ts, "value": float(value),
                                "owned": signal is not None})
        self.received += received
        self.undecodable += undecodable
        if subs.dirty:
            self.notify(now)

    def notify(self, now: float) -> None:
        sendto = self.sock.sendto
        for sub, rows in self.subs.due(now):
            for start in range(0, len(rows), ROWS_PER_DATAGRAM):
                data = encode_values("val", rows[start:start + ROWS_PER_DATAGRAM], tag=sub.tag,
                                     member=self.member)
                try:
                    sendto(data, sub.key)
                except OSError:
                    pass  # a full send buffer or a vanished subscriber: UDP promises nothing

    def receiveMsg_DrainTick(self, msg: DrainTick, sender: Any) -> None:
        if not self.can_watch_fds:
            self.drain()
        now = self.clock()
        if now >= self.next_expiry:  # leases: once a second is plenty
            self.subs.expire(now)
            self.next_expiry = now + 1.0
        changed = self.subs.changed
        for signal in self.tree.sweep(now):
            if signal.watchers:
                changed(signal)
        if self.subs.dirty:
            self.notify(now)

    # --- clients on UDP -----------------------------------------------------------------------

    def client_op(self, item: ClientOp, addr: Any, now: float) -> None:
        op, fields = item
        tag = fields.get("tag")
        try:
            if op == "sub":
                paths = _paths(fields)
                rate_hz = fields.get("rate_hz", 0)
                if type(rate_hz) not in (int, float) or rate_hz < 0:
                    raise InvalidMessageError("rate_hz is a number >= 0")
                rows = self.subs.subscribe(addr, self.tree.resolve(paths), float(rate_hz), now,
                                           lease_s=self.settings.lease_s, tag=tag)
                self.reply_rows(addr, rows, tag)
            elif op == "unsub":
                self.subs.unsubscribe(addr)
                self.reply(addr, {"op": "ack", "tag": tag})
            elif op == "get":
                self.reply_rows(addr, [s.row(now) for s in self.tree.resolve(_paths(fields))],
                                tag)
            else:  # set
                path, value = fields.get("path"), fields.get("value")
                if not isinstance(path, str):
                    raise InvalidMessageError("set names a path")
                result = self.set_signal(path, value, time.time(), now, forward=True)
                self.reply(addr, {"op": "ack" if result.ok else "err", "tag": tag,
                                  "kind": result.refusal, "error": result.error})
        except UnknownSignalError as exc:
            self.bad_ops += 1
            self.reply(addr, {"op": "err", "tag": tag, "kind": "not_found",
                              "error": f"no signal or branch {exc.args[0]}"})
        except InvalidMessageError as exc:
            self.bad_ops += 1
            self.reply(addr, {"op": "err", "tag": tag, "kind": "invalid", "error": str(exc)})
        except OverflowError as exc:
            self.reply(addr, {"op": "err", "tag": tag, "kind": "unavailable", "error": str(exc)})

    def reply_rows(self, addr: Any, rows: list[tuple[Any, ...]], tag: Any) -> None:
        for start in range(0, max(1, len(rows)), ROWS_PER_DATAGRAM):
            self.send_datagram(addr, encode_values("val", rows[start:start + ROWS_PER_DATAGRAM],
                                                   tag=tag, member=self.member))

    def reply(self, addr: Any, answer: dict[str, Any]) -> None:
        import msgpack
        self.send_datagram(addr, msgpack.packb(answer))

    def send_datagram(self, addr: Any, data: bytes) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass

    def set_signal(self, path: str, value: Any, ts: float, now: float, *,
                   forward: bool) -> SetSignalResult:
        signal, kind, why = self.tree.set(path, value, ts, now)
        if signal is None:
            return SetSignalResult(ok=False, refusal=kind, error=why)
        if signal.watchers:
            self.subs.changed(signal)
            self.notify(now)
        if forward and self.peer_handle is not None:
            self.peer_handle.send(PeerSet(path=path, value=value, ts=ts))
        return SetSignalResult(ok=True)

    # --- actor messages -----------------------------------------------------------------------

    def receiveMsg_GetSignals(self, msg: GetSignals, sender: Any) -> SignalValues:
        return SignalValues(values=self.tree.get(msg.paths, self.clock()))

    def receiveMsg_SetSignal(self, msg: SetSignal, sender: Any) -> SetSignalResult:
        return self.set_signal(msg.path, msg.value, time.time(), self.clock(), forward=True)

    def receiveMsg_PeerSet(self, msg: PeerSet, sender: Any) -> None:
        self.set_signal(msg.path, msg.value, msg.ts, self.clock(), forward=False)

    def receiveMsg_GetTreeSnapshot(self, msg: GetTreeSnapshot, sender: Any) -> TreeSnapshot:
        values, sensors = self.tree.snapshot(self.clock())
        return TreeSnapshot(values=values, sensors=sensors)

    def restore_from_peer(self, answer: Any) -> None:
        if isinstance(answer, TreeSnapshot):
            self.synced = self.tree.restore(answer.values, answer.sensors, self.clock())
            log.info("car holder %s restored %d values from its peer", self.member, self.synced)

    def receiveMsg_GetCarStats(self, msg: GetCarStats, sender: Any) -> CarStats:
        tree, now = self.tree, self.clock()
        stats = CarStats(
            member=self.member, pid=os.getpid(), incarnation=self.incarnation,
            udp_port=self.udp_port, window_s=now - self.window_start, applied=tree.accepted,
            applied_in_window=tree.accepted - self.applied_at_window_start,
            received=self.received, dropped_undecodable=self.undecodable + self.bad_ops,
            dropped_unknown_sensor=tree.dropped_unknown_sensor,
            dropped_out_of_range=tree.dropped_out_of_range,
            dropped_stale_seq=tree.dropped_stale_seq, failovers=tree.failovers,
            alerts=tree.alerts_raised, active_alerts=tree.active_alerts(),
            subscribers=len(self.subs), notifications=self.subs.notifications,
            history_sent=self.history_sent, history_stored=self.history_stored,
            history_shed=self.history_shed, history_buffered=len(self.history),
            history_failed=self.history_failed, synced_from_peer=self.synced)
        if msg.reset:
            self.window_start, self.applied_at_window_start = now, tree.accepted
        return stats

    # --- history ------------------------------------------------------------------------------

    def receiveMsg_HistoryTick(self, msg: HistoryTick, sender: Any) -> None:
        """Send the buffer if the window allows; else shed what is beyond the bound."""
        rows = self.history
        if not rows or self.store is None:
            return
        if self.history_in_flight >= self.settings.history_window:
            excess = len(rows) - self.settings.history_buffer_rows
            if excess > 0:
                del rows[:excess]
                self.history_shed += excess
            return
        self.history = []
        self.history_in_flight += 1
        self.history_sent += len(rows)
        count = len(rows)

        def answered(answer: Any) -> None:
            self.history_in_flight -= 1
            if isinstance(answer, Stored):
                self.history_stored += answer.records
            else:
                self.history_failed += count

        def unavailable() -> None:
            self.history_in_flight -= 1
            self.history_failed += count

        self.store.request(StoreRows(rows=rows), answered,
                           timeout_s=self.settings.history_timeout_s, on_unavailable=unavailable)


def _paths(fields: dict[str, Any]) -> list[str]:
    paths = fields.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InvalidMessageError("paths is a non-empty list of signal or branch names")
    return paths
