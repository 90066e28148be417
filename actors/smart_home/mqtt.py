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

No silent loss while ptr is down (the design: a documented broker configuration, checked): the
broker queues for the absent persistent session, but only ``max_queued_messages`` (Mosquitto's
default 1,000: ~48 s of the house's 21 readings/s) and drops the rest while the publisher sees
success. ``actors/smart_home/mosquitto.conf`` sizes the queue for a stated outage. The edge checks
and reports what it cannot prevent, each as a stored alert (sensor ``mqtt``), a count in
``MqttStats`` and a log line:

* at start, ``queue_probe`` messages are queued for an absent probe session and counted back: a
  broker keeping fewer (the default configuration) raises ``broker_queue_too_small``;
* ``$SYS/broker/publish/messages/dropped`` is followed, and its last value kept in
  ``state_dir``: drops since the edge last looked (while it was away included) raise
  ``broker_dropped_messages`` (the counter is the broker's, so another client's drops count too:
  a false alarm is better than a silent loss);
* a reconnection that finds no session where the edge had one (expired, or a broker restarted
  without persistence) raises ``broker_session_lost``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, TypeAdapter, ValidationError

from actors.edges import BridgeClosedError, EdgeBridge, Pending, SaturatedError
from actors.edges.http_edge import BridgedEdge, BridgedEdgeArgs
from actors.edges.mqtt import persistent_client
from actors.storage import StorageBackoff
from protocols.codec import field_errors
from protocols.smart_home import (
    BrokerAlert,
    GetMqttStats,
    MqttDeliveryError,
    MqttStats,
    ReadingBody,
)
from protocols.edges import EdgeAnswers, EdgeBatch, EdgeInfo, EdgeItem, GetEdgeInfo, Refusal

log = logging.getLogger("ptr.smart_home.mqtt")

__all__ = ["MqttDeliveryError", "MqttEdgeArgs", "MqttIngestEdge", "TOPIC_PREFIX"]

TOPIC_PREFIX = "ptr/smart-home"
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
CONFIG_SNIPPET = "actors/smart_home/mosquitto.conf"
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


class MqttEdgeArgs(BridgedEdgeArgs):
    """The MQTT edge's arguments (see the class docstring)."""

    target: str
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    prefix: str = TOPIC_PREFIX
    client_id: str = "ptr-smart-home-ingest"
    session_expiry_s: int = Field(default=3600, ge=0)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    timeout_s: float = Field(default=10.0, gt=0)
    max_in_flight: int = Field(default=4096, ge=1)
    state_dir: str | None = None
    queue_probe: int = Field(default=1001, ge=0)


class MqttIngestEdge(BridgedEdge):
    """Subscribes to ``<prefix>/readings/#`` and feeds the ingest; see the module docstring.

    Args: ``host`` (127.0.0.1), ``port`` (1883), ``prefix`` (``ptr/smart-home``), ``client_id``
    (``ptr-smart-home-ingest``: one per deployment, it names the persistent session),
    ``session_expiry_s`` (3600: how long the broker keeps queuing while the edge is away),
    ``receive_maximum`` (1000), ``target`` (the ingest's name), ``timeout_s`` (10),
    ``state_dir`` (where the last ``$SYS`` dropped count and whether a session exists are kept;
    none: nothing kept), ``queue_probe`` (1001 messages; 0: no startup check).
    """

    Args: type[BridgedEdgeArgs] = MqttEdgeArgs
    client: mqtt.Client | None = None

    def start_edge(self) -> EdgeBridge[_Received]:
        args: MqttEdgeArgs = self.edge_args
        self.broker_host = args.host
        self.broker_port = args.port
        prefix = args.prefix.rstrip("/")
        self.readings_topic = f"{prefix}/readings"
        self.topic_filter = f"{self.readings_topic}/#"
        self.target = args.target
        self.timeout_s = args.timeout_s
        self.generation = 0
        self.connected = False
        self.received = self.rejected = self.forwarded = self.acked = 0
        self.last_error = ""
        self.held: list[_Received] = []   # refused for now (503): not acknowledged, offered again
        self.held_timer: int | None = None
        self.backoff = StorageBackoff(self.path or "mqtt", clock=self.clock)
        self.client_id = args.client_id
        state_dir = args.state_dir
        self.state_path = (Path(state_dir) / f"mqtt-{self.client_id}.json") if state_dir else None
        self.state: dict[str, Any] = self.load_state()
        self.sys_dropped: int | None = None  # the last $SYS value on this connection
        self.broker_dropped = self.sessions_lost = 0
        self.own_drops = 0                   # what the queue probe made the broker drop
        self.drops_lock = threading.Lock()
        self.queue_probe = ""
        self.ingest = self.peer(self.target)
        bridge: EdgeBridge[_Received] = EdgeBridge(max_in_flight=args.max_in_flight)
        self.mqtt_bridge = bridge
        client = persistent_client(self.client_id, self.broker_host, self.broker_port,
                                   on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                                   on_message=self._on_message,
                                   session_expiry_s=args.session_expiry_s,
                                   receive_maximum=args.receive_maximum)
        client.loop_start()
        self.client = client
        probe = args.queue_probe
        if probe > 0:
            threading.Thread(target=self.probe_queue, args=(prefix, probe), daemon=True,
                             name=f"{self.path}-queue-probe").start()
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
        self.sys_dropped = None
        if not flags.session_present and self.state.get("session"):
            self.sessions_lost += 1
            self.notice("broker_session_lost", 1,
                        f"the broker had no session for {self.client_id!r}: readings published "
                        "while ptr was away were not kept (the session expired, or the broker "
                        f"restarted without persistence; see {CONFIG_SNIPPET})")
        if not self.state.get("session"):
            self.state["session"] = True
            self.save_state()
        client.subscribe([(self.topic_filter, 1), (DROPPED_TOPIC, 0)])

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected = False
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == DROPPED_TOPIC:
            self.broker_says_dropped(message.payload)
            return
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

    # --- what the broker says it lost -------------------------------------------------------------

    def broker_says_dropped(self, payload: bytes) -> None:
        """``$SYS``'s dropped counter moved: alert for the drops since the edge last looked."""
        try:
            value = int(payload)
        except ValueError:
            return
        last = self.sys_dropped
        if last is None:  # the first value on this connection: compare with the kept one
            kept = self.state.get("dropped")
            delta = 0 if kept is None else value - kept if value >= kept else value
        else:
            delta = value - last if value >= last else value  # smaller: the broker restarted
        self.sys_dropped = value
        with self.drops_lock:
            own = min(delta, self.own_drops)
            self.own_drops -= own
        delta -= own
        self.state["dropped"] = value
        self.save_state()
        if delta > 0:
            self.broker_dropped += delta
            self.notice("broker_dropped_messages", delta,
                        f"the MQTT broker dropped {delta} QoS 1 messages (its queue for an "
                        f"absent client was full): readings may be lost; see {CONFIG_SNIPPET}")

    def probe_queue(self, prefix: str, count: int) -> None:
        """The startup check: queue ``count`` messages for an absent probe session and count
        how many the broker kept. Runs in its own thread; a broker that cannot be reached is
        left to the main client's reconnecting."""
        try:
            kept = _probe_queue(self.broker_host, self.broker_port,
                                f"{prefix}/queue-probe/{uuid.uuid4().hex[:12]}",
                                f"{self.client_id}-probe", count)
        except (OSError, TimeoutError) as exc:
            self.queue_probe = f"not checked: {exc}"
            return
        if kept >= count:
            self.queue_probe = f"ok: the broker kept {kept} messages for an absent client"
            return
        with self.drops_lock:
            self.own_drops += count - kept
        self.queue_probe = (f"the broker kept only {kept} of {count} messages for an absent "
                            "client")
        self.notice("broker_queue_too_small", kept,
                    f"the MQTT broker keeps only {kept} messages for an absent client "
                    f"(max_queued_messages): a longer outage of ptr loses readings; configure "
                    f"it as {CONFIG_SNIPPET} says")

    def notice(self, rule: str, value: float, text: str) -> None:
        """From paho's threads: hand an alert to the actor (through the bridge)."""
        alert = BrokerAlert(rule=rule, value=value, text=text, ts=time.time())  # type: ignore[arg-type]
        try:
            self.mqtt_bridge.submit_nowait(_Received(alert, -1, 0, self.generation, ""))
        except (SaturatedError, BridgeClosedError):
            log.warning("%s: %s", self.path, text)

    def load_state(self) -> dict[str, Any]:
        if self.state_path is None:
            return {}
        try:
            value = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def save_state(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.state))
            tmp.replace(self.state_path)
        except OSError as exc:
            log.warning("%s: could not keep the MQTT state in %s: %s", self.path,
                        self.state_path, exc)

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
        received = []
        for pending in drained:
            item = pending.item
            if isinstance(item.body, BrokerAlert):
                self.ingest.send(item.body)
            else:
                received.append(item)
        if received:
            self.offer(received)

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
                         incarnation=self.incarnation, held=len(self.held),
                         broker_dropped=self.broker_dropped, sessions_lost=self.sessions_lost,
                         queue_probe=self.queue_probe)

    def receiveMsg_GetEdgeInfo(self, msg: GetEdgeInfo, sender: Any) -> EdgeInfo:
        return EdgeInfo(scheme="mqtt", host=self.broker_host, port=self.broker_port,
                        incarnation=self.incarnation)


def _probe_queue(host: str, port: int, topic: str, client_id: str, count: int) -> int:
    """How many of ``count`` QoS 1 messages the broker keeps for an absent persistent session."""
    received = 0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    def session(clean: bool) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 60
        client.connect(host, port, keepalive=30, clean_start=clean, properties=properties)
        client.loop_start()
        return client

    def end(client: mqtt.Client, expiry_s: int) -> None:
        properties = Properties(PacketTypes.DISCONNECT)
        properties.SessionExpiryInterval = expiry_s
        client.disconnect(properties=properties)
        client.loop_stop()

    probe = session(clean=True)
    probe.subscribe(topic, qos=1)
    if not subscribed.wait(5):
        end(probe, 0)
        raise TimeoutError("the broker did not confirm the probe's subscription")
    end(probe, 60)                                   # absent now, its session kept
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                            client_id=f"{client_id}-pub-{uuid.uuid4().hex[:6]}")
    publisher.connect(host, port)
    publisher.loop_start()
    try:
        infos = [publisher.publish(topic, b"1", qos=1) for _ in range(count)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    probe = session(clean=False)
    deadline = time.monotonic() + 5
    last = -1
    while time.monotonic() < deadline and not done.wait(0.3):
        if received == last:
            break                                    # nothing more came: that is all it kept
        last = received
    end(probe, 0)                                    # the session is gone with the probe
    return received
