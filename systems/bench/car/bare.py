"""The bare baseline of ``ptr bench car``: one asyncio process doing the same decode-apply-notify
with no actors, no supervision, no pair, no history.

What a competent Python developer would write without ptr: one UDP socket read with
``loop.add_reader`` until it is empty (never asyncio's per-datagram ``DatagramProtocol``, see
docs/platform.md), the same decoder (``protocols.car.decode_datagram``), the same ``SignalTree``
and ``Subscriptions`` (so the comparison is of what runs around them), and a timer for the
deadline sweep. Subscribers use the same ``sub`` datagrams.

``python -m systems.bench.car.bare EXTRA_SIGNALS``: prints ``{"port": P}`` and serves until
killed; the datagram ``b"stats"`` is answered with JSON ``{"applied", "received", "at"}`` (its
monotonic clock), so the bench takes its window's figures when its own window begins and ends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import msgpack

from actors.car.holder import build_tree_of
from actors.car.tree import Subscriptions
from protocols.car import ClientOp, decode_datagram, encode_values
from protocols.errors import InvalidMessageError

SWEEP_S = 0.002


async def serve(extra: int) -> None:
    tree = build_tree_of(None, extra, 2, 3.0)
    subs = Subscriptions()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    counts = {"received": 0}

    def notify(now: float) -> None:
        for sub, rows in subs.due(now):
            try:
                sock.sendto(encode_values("val", rows, tag=sub.tag, member="bare"), sub.key)
            except OSError:
                pass

    def readable() -> None:
        now = time.monotonic()
        for _ in range(512):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            counts["received"] += 1
            if data == b"stats":
                sock.sendto(json.dumps({"applied": tree.accepted, "received": counts["received"],
                                        "at": time.monotonic()}).encode(), addr)
                continue
            try:
                item = decode_datagram(data)
            except InvalidMessageError:
                continue
            if isinstance(item, ClientOp):
                if item.op == "sub":
                    rows = subs.subscribe(addr, tree.resolve(item.fields["paths"]),
                                          float(item.fields.get("rate_hz", 0)), now,
                                          tag=item.fields.get("tag"))
                    sock.sendto(msgpack.packb({"op": "val", "values": rows[:200]}), addr)
                continue
            signal = tree.apply(item[0], item[1], item[2], item[3], now)
            if signal is not None and signal.watchers:
                subs.changed(signal)
        if subs.dirty:
            notify(now)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for signal in tree.sweep(now):
                subs.changed(signal)
            notify(now)

    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), readable)
    await sweep()


def main(argv: list[str]) -> None:
    asyncio.run(serve(int(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
