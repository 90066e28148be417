"""An MQTT v5 client for an ingest edge: a persistent session the broker keeps queuing for while
the edge is away, messages acknowledged by the edge itself (``manual_ack``) once what they carry is
safe, and reconnection in the background (paho's loop thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["persistent_client"]


def persistent_client(client_id: str, host: str, port: int, *,
                      on_connect: Callable[..., None], on_disconnect: Callable[..., None],
                      on_message: Callable[..., None], session_expiry_s: int = 3600,
                      receive_maximum: int = 1000) -> mqtt.Client:
    """A client connecting (asynchronously) with ``clean_start=False``: the broker keeps the
    session named ``client_id`` for ``session_expiry_s`` after a disconnect and sends at most
    ``receive_maximum`` unacknowledged messages at once. Call ``loop_start()`` to run it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]  # paho types ints; floats work
    properties: Any = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = session_expiry_s
    properties.ReceiveMaximum = receive_maximum
    client.connect_async(host, port, keepalive=30, clean_start=False, properties=properties)
    return client
