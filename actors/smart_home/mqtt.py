"""MQTT ingest: readings that home sensors publish to the Mosquitto broker, fed to the same ingest
as the HTTPS edge, and acknowledged to the broker only once the ingest has answered for them.

Sensors publish a reading (or a JSON list of readings) with QoS 1 to
``ptr/smart-home/readings/<sensor_id>``. paho-mqtt's network thread validates each payload (the
same ``ReadingBody`` as HTTPS) and puts it on an ``EdgeBridge``; the actor drains the bridge and
asks the ingest with one ``EdgeBatch`` per drained batch (``BridgedEdge``'s credit window). The
PUBACK for each message is sent only after the ingest answered, which in broker mode means after
the reading was persisted: ``manual_ack`` plus a persistent session (MQTT 5, ``clean_start`` off,
a session expiry) make the broker resend whatever this edge had not acknowledged when it died.

What LIMITS.md warns about, and what this does about it: Mosquitto drops messages for a subscriber
with more than ``max_queued_messages`` (1,000 by default) queued, while the publisher sees success.
So the edge must keep up: it batches, asks for up to ``receive_maximum`` unacknowledged messages in
flight, and is tested at its load with sequence numbers.

Failure rules:

* A payload that is not a valid reading is counted (``rejected``), logged, and acknowledged: a
  publisher cannot be told, and without the ack the broker would resend it for ever. So is a
  reading the ingest refuses as invalid (400: unknown sensor...) or as a conflict (409: a
  message id reused with another reading), and one whose ``sensor_id`` is not the topic's
  (``<prefix>/readings/<sensor_id>``: a publisher allowed one topic cannot speak for another
  sensor; ``<prefix>/readings`` itself carries readings of any sensor).
* A reading the ingest refuses for now (503: its storage is unavailable) is not acknowledged: the
  edge holds it and offers it again after a backoff (0.1 s doubling to 2 s), and lives on. The
  broker sends at most ``receive_maximum`` unacknowledged messages, so what is held is bounded;
  if the edge dies meanwhile, the broker resends them.
* If the ingest cannot take a batch (it is down, times out or crashes on it), this edge crashes:
  its restart reconnects with the same client id and the broker resends every unacknowledged
  message. Acks are tied to the connection they arrived on; a message from an earlier connection is
  never acknowledged on a later one (its packet id may mean another message there).
* The broker being down is not a crash: paho reconnects in the background, and ``MqttStats``
  says ``connected: false``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import TypeAdapter, ValidationError

from actors.edges import BridgeClosedError, EdgeBridge, Pending, SaturatedError
from actors.edges.http_edge import BridgedEdge
from actors.storage import StorageBackoff
from protocols.codec import field_errors
from protocols.smart_home import GetMqttStats, MqttDeliveryError, MqttStats, ReadingBody
from protocols.edges import EdgeAnswers, EdgeBatch, EdgeInfo, EdgeItem, GetEdgeInfo, Refusal

log = logging.getLogger("ptr.smart_home.mqtt")

__all__ = ["MqttDeliveryError", "MqttIngestEdge", "TOPIC_PREFIX"]

TOPIC_PREFIX = "ptr/smart-home"
_PAYLOAD = TypeAdapter(ReadingBody | list[ReadingBody])


class RedeliverHeld:
    """Timer message: offer the ingest again the readings it refused for now."""


@dataclass(frozen=True, slots=True)
class _Received:
    body: Any
    mid: int
    qos: int
    generation: int
    topic: str


class MqttIngestEdge(BridgedEdge):
    """Subscribes to ``<prefix>/readings/#`` and feeds the ingest; see the module docstring.

    Args: ``host`` (127.0.0.1), ``port`` (1883), ``prefix`` (``ptr/smart-home``), ``client_id``
    (``ptr-smart-home-ingest``: one per deployment, it names the persistent session),
    ``session_expiry_s`` (3600: how long the broker keeps queuing while the edge is away),
    ``receive_maximum`` (1000), ``target`` (the ingest's name), ``timeout_s`` (10).
    """

    client: mqtt.Client | None = None

    def start_edge(self) -> EdgeBridge[_Received]:
        args = self.args
        self.broker_host = str(args.get("host", "127.0.0.1"))
        self.broker_port = int(args.get("port", 1883))
        prefix = str(args.get("prefix", TOPIC_PREFIX)).rstrip("/")
        self.readings_topic = f"{prefix}/readings"
        self.topic_filter = f"{self.readings_topic}/#"
        self.target = str(args["target"])
        self.timeout_s = float(args.get("timeout_s", 10.0))
        self.generation = 0
        self.connected = False
        self.received = self.rejected = self.forwarded = self.acked = 0
        self.last_error = ""
        self.held: list[_Received] = []   # refused for now (503): not acknowledged, offered again
        self.held_timer: int | None = None
        self.backoff = StorageBackoff(self.path or "mqtt", clock=self.clock)
        bridge: EdgeBridge[_Received] = EdgeBridge(max_in_flight=int(args.get("max_in_flight",
                                                                              4096)))
        self.mqtt_bridge = bridge
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=str(args.get("client_id", "ptr-smart-home-ingest")),
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(0.2, 5)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = int(args.get("session_expiry_s", 3600))
        properties.ReceiveMaximum = int(args.get("receive_maximum", 1000))
        client.connect_async(self.broker_host, self.broker_port, keepalive=30, clean_start=False,
                             properties=properties)
        client.loop_start()
        self.client = client
        return bridge

    def stop_edge(self) -> None:
        client = self.client
        if client is not None:
            client.disconnect()  # clean: the session (and what it queues) outlives us
            client.loop_stop()

    def target_names(self) -> list[str]:
        return [self.target]

    # --- paho's network thread ------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            return
        self.generation += 1
        self.connected = True
        client.subscribe(self.topic_filter, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected = False
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        try:
            body = _PAYLOAD.validate_json(message.payload)
        except ValidationError as exc:
            self.reject(message.topic, f"invalid reading: {field_errors(exc)[:3]}")
            client.ack(message.mid, message.qos)
            return
        if isinstance(body, list) and not body:
            client.ack(message.mid, message.qos)
            return
        mismatch = self.topic_mismatch(message.topic, body)
        if mismatch:
            self.reject(message.topic, mismatch)
            client.ack(message.mid, message.qos)
            return
        try:
            self.mqtt_bridge.submit_nowait(_Received(body, message.mid, message.qos,
                                                     self.generation, message.topic))
        except (SaturatedError, BridgeClosedError) as exc:
            # not acknowledged: the broker resends it on our next connection
            self.last_error = f"not taken: {exc}"

    def topic_mismatch(self, topic: str, body: Any) -> str:
        """Why the payload's sensor ids are not the topic's ("" when they agree)."""
        sensor_id = topic[len(self.readings_topic):].lstrip("/")
        if not sensor_id:
            return ""
        for index, reading in enumerate(body if isinstance(body, list) else [body]):
            if reading.root.sensor_id != sensor_id:
                where = f"{index}.sensor_id" if isinstance(body, list) else "sensor_id"
                return (f"{where} {reading.root.sensor_id!r} is not the topic's sensor "
                        f"{sensor_id!r}")
        return ""

    def reject(self, topic: str, why: str) -> None:
        self.rejected += 1
        self.last_error = f"{topic}: {why}"
        if self.rejected in (1, 10, 100) or self.rejected % 1000 == 0:
            log.warning("%s: rejected %d MQTT messages; last %s", self.path, self.rejected,
                        self.last_error)

    # --- the actor thread -------------------------------------------------------------------------

    def send_drained(self, drained: list[Pending[_Received]]) -> None:
        self.offer([p.item for p in drained])

    def offer(self, received: list[_Received]) -> None:
        items = [EdgeItem(route="mqtt", body=r.body, peer=f"mqtt:{r.topic}") for r in received]
        self.ask_target(self.target, EdgeBatch(items=items),
                        lambda answer: self.acknowledge(received, answer),
                        self.delivery_failed, self.timeout_s)

    def acknowledge(self, received: list[_Received], answer: Any) -> None:
        if not isinstance(answer, EdgeAnswers) or len(answer.answers) != len(received):
            raise MqttDeliveryError(f"{self.target} answered {type(answer).__name__} to a batch "
                                    f"of {len(received)}")
        client = self.client
        assert client is not None
        held: list[_Received] = []
        for item, result in zip(received, answer.answers):
            if isinstance(result, Refusal) and result.retryable:
                held.append(item)
                self.last_error = result.error
                continue
            if isinstance(result, Refusal):
                self.reject(item.topic, result.error)
            else:
                self.forwarded += len(item.body) if isinstance(item.body, list) else 1
            if item.generation == self.generation and self.connected:
                client.ack(item.mid, item.qos)
                self.acked += 1
        if held:
            self.hold(held)
        else:
            self.backoff.succeeded()

    def hold(self, items: list[_Received]) -> None:
        """Keep refused-for-now readings unacknowledged and offer them again after the backoff."""
        self.held.extend(items)
        delay = self.backoff.failed(self.last_error)
        if self.held_timer is None:
            self.held_timer = self.start_timer(delay, RedeliverHeld())

    def receiveMsg_RedeliverHeld(self, msg: RedeliverHeld, sender: Any) -> None:
        if sender != self.myAddress:
            return
        self.held_timer = None
        if not self.ready():  # the window is full or the ingest is restarting: a little later
            self.held_timer = self.start_timer(self.backoff.first_s, RedeliverHeld())
            return
        # A message from an earlier connection cannot be acknowledged on this one; the broker
        # resends it on this one anyway.
        held, self.held = [i for i in self.held if i.generation == self.generation], []
        if held:
            self.offer(held)

    def delivery_failed(self, exc: BaseException) -> None:
        raise MqttDeliveryError(f"{self.target} did not take a batch of MQTT messages: {exc}")

    # --- questions ------------------------------------------------------------------------------

    def receiveMsg_GetMqttStats(self, msg: GetMqttStats, sender: Any) -> MqttStats:
        return MqttStats(connected=self.connected, received=self.received, rejected=self.rejected,
                         forwarded=self.forwarded, acked=self.acked, last_error=self.last_error,
                         incarnation=self.incarnation, held=len(self.held))

    def receiveMsg_GetEdgeInfo(self, msg: GetEdgeInfo, sender: Any) -> EdgeInfo:
        return EdgeInfo(scheme="mqtt", host=self.broker_host, port=self.broker_port,
                        incarnation=self.incarnation)
