"""MQTT ingest for a gateway: readings that sensors publish to Mosquitto take the same path as HTTPS
(``GatewayServer.accept``: authentication, validation, sequenced append), and the broker gets its
PUBACK only after the log appended them.

A sensor publishes with QoS 1 to ``<prefix>/readings/<sensor_id>`` the JSON envelope
``{"token": "...", "readings": [reading, ...]}`` (or one reading). Every gateway subscribes with the
shared subscription ``$share/<group>/<prefix>/readings/+``, so the broker balances messages over the
gateways as the kernel balances HTTPS connections. Each gateway keeps a persistent MQTT 5 session
(its own client id, ``clean_start`` off, a session expiry): a gateway killed before it acknowledged
a message gets it again when its restart reconnects with the same id.

Failure rules: a refused message (bad credentials, invalid) is counted like an HTTPS refusal and
acknowledged (a publisher cannot be told, and without the ack the broker would resend it for ever);
a message the log could not take (503) is not acknowledged, so the broker resends it after the next
reconnect. The broker being down is not a crash: paho reconnects in the background.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import paho.mqtt.client as mqtt

from actors.edges.mqtt import persistent_client
from protocols.grid import RefusalReason

log = logging.getLogger("ptr.grid.mqtt")

TOPIC_PREFIX = "ptr/grid"


class MqttIngest:
    """Subscribes for one gateway; ``server`` is its ``GatewayServer`` (loop and ``accept``)."""

    def __init__(self, server: Any, host: str, port: int, prefix: str, client_id: str,
                 share_group: str = "ptr-grid", session_expiry_s: int = 3600) -> None:
        self.server = server
        self.prefix = prefix.rstrip("/")
        self.topic_filter = f"$share/{share_group}/{self.prefix}/readings/+"
        self.connected = False
        self.received = self.acked = 0
        self.client = persistent_client(client_id, host, port, on_connect=self._on_connect,
                                        on_disconnect=self._on_disconnect,
                                        on_message=self._on_message,
                                        session_expiry_s=session_expiry_s)

    def start(self) -> None:
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not reason.is_failure:
            self.connected = True
            client.subscribe(self.topic_filter, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        sensor_id = message.topic.rsplit("/", 1)[-1]
        future = asyncio.run_coroutine_threadsafe(self.handle(sensor_id, message.payload),
                                                  self.server.loop_thread.loop)
        mid, qos = message.mid, message.qos

        def done(answered: Any) -> None:
            status = answered.result()[0] if not answered.cancelled() else 503
            if status != 503:
                client.ack(mid, qos)
                self.acked += 1
        future.add_done_callback(done)

    async def handle(self, sensor_id: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        try:
            envelope = json.loads(payload)
            token = envelope["token"]
            readings = json.dumps(envelope["readings"]).encode()
            if not isinstance(token, str):
                raise TypeError("token")
        except (ValueError, KeyError, TypeError):
            # no credentials we can read: counted as missing, nothing parsed further
            return self.server.refuse(sensor_id if self.server.auth.record(sensor_id) else "-",
                                      RefusalReason.MISSING_CREDENTIALS,
                                      'publish {"token": ..., "readings": [...]}')
        return await self.server.accept(sensor_id, token, None, readings)
