"""Publishing events: MQTT (paho-mqtt 2) with last will, reconnects and a store-and-forward outbox."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge import __version__
from edge.config import IdentityConfig, MqttConfig
from edge.events import EventFactory, topic
from edge.lograte import RateLimitedLog
from edge.transport.courier import Courier
from edge.transport.mqtt_config import bounded_client_id
from edge.transport.outbox import Outbox, Row
from edge.transport.outbox_open import open_store
from edge.transport.publishers import LogPublisher, Publisher, RecordingPublisher, _Counting

__all__ = ["LogPublisher", "MqttPublisher", "Publisher", "RecordingPublisher"]  # the fakes live in publishers.py

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # broker refusals (e.g. an ACL denying a topic): a few lines a minute, all counted

STOP_FLUSH_S = 2.0  # longest stop() waits for the retained `offline` status to be acknowledged
# Largest packet the kiosk accepts (MQTT 5 CONNECT property; the broker drops anything bigger for this client):
# commands are at most 32 KiB (remote config), acks and pauses 1 KiB. MQTT 3.1.1 has no such property.
INBOUND_MAX_PACKET = 64 * 1024



def default_client_id(site_id: str, kiosk_id: str) -> str:
    """``edge-emotion-SITE-KIOSK``, bounded to 64 characters (``bounded_client_id``)."""
    return bounded_client_id(f"edge-emotion-{site_id}-{kiosk_id}", f"{site_id}/{kiosk_id}")


def _forget_unacknowledged(client: paho.Client) -> None:
    """Drop what paho kept unacknowledged from the last connection: it would re-send it right after ``on_connect``,
    i.e. after the fresh ``online`` status (an old ``paused`` became the retained state) and beside the outbox,
    which re-sends every unacknowledged event itself (each arrived twice, an older retained ``current`` last).
    paho has no public call for this (pinned <3; tests/test_mqtt_resend.py fails if its internals move)."""
    with client._out_message_mutex:
        client._out_messages.clear()
        client._inflight_messages = 0

class MqttPublisher(_Counting):
    """Publishes events to an MQTT broker with a retained online/offline status and a last will.

    Never blocks the caller.  Every event goes into the outbox (edge/transport/outbox.py: SQLite in ``state_dir``, else
    memory bounded by ``cfg.max_queued``) before a sender thread hands it to paho; its PUBACK removes it, and on
    every (re)connect all queued events are sent again, oldest first (QoS 1: at least once, never lost while
    queued).  Status messages are not queued: a fresh ``online`` status is published on every (re)connect.
    ``status_body()`` is called from the network thread and returns the status body without ``state``.
    """

    def __init__(self, cfg: MqttConfig, identity: IdentityConfig, factory: EventFactory,
                 status_body: Callable[[], dict[str, Any]], resolve: Callable[[str], Path] = Path,
                 on_message: Callable[[str, bytes], None] | None = None, subscriptions: Sequence[str] = (),
                 state_dir: Path | None = None, announce: Callable[[], list[tuple[str, str]]] | None = None,
                 birth_topic: str | None = None) -> None:
        """Configure; nothing touches the network until start()."""
        super().__init__()
        self.cfg = cfg
        self.identity = identity
        self.factory = factory
        self.status_body = status_body
        self.resolve = resolve
        self.on_message = on_message
        self.subscriptions = tuple(subscriptions) + ((birth_topic,) if birth_topic else ())
        self._sub_mid: int | None = None  # the last SUBACK awaited
        self._refused: list[str] = []  # "topic (reason)" the broker refused at the last subscribe
        self.announce = announce  # retained (topic, payload)s after every online status (Home Assistant discovery)
        self.birth_topic = birth_topic  # `online` there: announce again (Home Assistant restarted)
        self.client_id = cfg.client_id or default_client_id(identity.site_id, identity.kiosk_id)
        self.status_topic = self.topic("status")
        self.last_error: str | None = None
        self.state_dir = state_dir
        self.outbox: Outbox | None = None  # opened by start()
        self._courier: Courier | None = None
        self._connected = False
        self._connecting = False  # between the connect's status snapshot and `connected`
        self._late_status: tuple[str, str] | None = None  # a status made in that window (sent right after it)
        self._stopping = False
        self._protocol = MQTTProtocolVersion.MQTTv311 if cfg.protocol == "3.1.1" else MQTTProtocolVersion.MQTTv5
        self._client: paho.Client | None = None
        self._counts["inbound_retained"] = 0  # inbound commands refused because they carried the retain flag
        self._retained_warned: set[str] = set()
        self.unsent = 0  # events lost at stop() (queued, unacknowledged, no state folder to keep them)

    def topic(self, kind: str) -> str:
        """This kiosk's topic for ``kind``."""
        return topic(self.cfg.topic_prefix, self.identity.site_id, self.identity.kiosk_id, kind)

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection."""
        return self._connected

    def _status(self, state: str) -> str:
        """The status payload; a body the schema refuses is counted (``refused``) and replaced by one that says so."""
        try:
            body = {k: v for k, v in self.status_body().items() if k != "state"}
            payload = self.factory.make("status", state=state, **body)
        except Exception as exc:  # noqa: BLE001 - never abort connect/disconnect handling over a status body
            self._bump("refused")
            log.error("status body refused, publishing a minimal status instead: %s", str(exc)[:500])
            payload = self.factory.make("status", state=state, version=__version__,
                                        counter_name=self.identity.counter_name, models={},
                                        degraded=["status: the full status was refused by its schema (a bug; see "
                                                  "the kiosk log and health.mqtt.refused)"])
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def _build(self) -> paho.Client:
        cfg = self.cfg
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self._protocol,
                             transport=cfg.transport, reconnect_on_failure=True)
        client.suppress_exceptions = True
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            tls = cfg.tls
            client.tls_set(ca_certs=str(self.resolve(tls.ca_file)) if tls.ca_file else None,
                           certfile=str(self.resolve(tls.cert_file)) if tls.cert_file else None,
                           keyfile=str(self.resolve(tls.key_file)) if tls.key_file else None)
            if tls.insecure:
                client.tls_insecure_set(True)
        # paho doubles the wait from min to max without jitter: a random first wait per kiosk (min..2 min, at most
        # max) keeps a site's kiosks from reconnecting in lockstep after a power cut or a broker restart.
        first = min(cfg.reconnect_min_s * random.uniform(1.0, 2.0), cfg.reconnect_max_s)
        client.reconnect_delay_set(first, cfg.reconnect_max_s)  # type: ignore[arg-type]
        # paho's own queue of unacknowledged QoS 1 messages; room for a full backlog flush plus live traffic.
        client.max_queued_messages_set(2 * cfg.max_queued + 1)
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)  # before connect
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _open_outbox(self) -> Outbox:
        if self.outbox is None:
            cfg = self.cfg
            self.outbox = Outbox(open_store(self.state_dir, cfg.outbox_max_rows, int(cfg.outbox_max_mb * 2**20),
                                            cfg.outbox_max_age_s, cfg.max_queued))
            if len(self.outbox):
                log.info("outbox holds %d event(s) from before the restart", len(self.outbox))
            self._courier = Courier(self.outbox, self._send_row, window=min(64, cfg.max_queued))
        return self.outbox

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried with back-off, never raising here."""
        self._open_outbox()
        assert self._courier is not None
        self._courier.start()
        self._connect()

    def _connect(self) -> None:
        self._stopping = False
        self._client = self._build()
        props = None
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.MaximumPacketSize = INBOUND_MAX_PACKET
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s, properties=props)
        self._client.loop_start()
        log.info("MQTT publisher started for %s:%d (%s, MQTT %s) as %s", self.cfg.host, self.cfg.port,
                 self.cfg.transport, self.cfg.protocol, self.client_id)

    def _downgrade(self, old: paho.Client) -> None:
        """Broker refused MQTT 5 (protocol auto): rebuild the client for MQTT 3.1.1."""
        old.disconnect()
        old.loop_stop()
        if self._stopping or self._client is not old:
            return
        self._protocol = MQTTProtocolVersion.MQTTv311
        self._connect()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        try:
            if reason.is_failure:
                self.last_error = f"broker refused connection: {reason}"
                if (str(reason) == "Unsupported protocol version" and self.cfg.protocol == "auto"
                        and self._protocol == MQTTProtocolVersion.MQTTv5):
                    log.warning("broker does not support MQTT 5; falling back to MQTT 3.1.1")
                    threading.Thread(target=self._downgrade, args=(client,), daemon=True).start()
                    return
                log.error("%s (%s:%d as %r)", self.last_error, self.cfg.host, self.cfg.port, self.cfg.username)
                return
            self.last_error = None
            _forget_unacknowledged(client)
            if self.subscriptions:  # first: staff commands never depend on a publish succeeding
                self._subscribe(client)
            with self._lock:
                self._late_status = None  # a status made from here on is newer than the snapshot below: kept
                self._connecting = True
            client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
            self._announce(client)
            with self._lock:
                self._connected = True
                self._connecting = False
                self._counts["connects"] += 1
                late, self._late_status = self._late_status, None
            if late is not None:  # the state changed (e.g. a pause) while this connect was being handled
                client.publish(late[0], late[1], qos=1, retain=True)
            if self._courier is not None:
                self._courier.up()  # after the status: queued events follow, oldest first
            log.info("connected to MQTT broker %s:%d; %d queued event(s) to send", self.cfg.host, self.cfg.port,
                     len(self.outbox or ()))
        except Exception:
            log.exception("error handling MQTT connect")

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        msg = f"cannot reach MQTT broker {self.cfg.host}:{self.cfg.port}; retrying"
        log.log(logging.DEBUG if self.last_error == msg else logging.WARNING, msg)  # once per outage
        self.last_error = msg

    def _on_disconnect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        try:
            was = self._connected
            with self._lock:
                self._connected = False
            if self._courier is not None:
                self._courier.down()
            if was and not self._stopping:
                log.warning("disconnected from MQTT broker: %s; reconnecting", reason)
            if not self._stopping:  # fresh timestamp on the will for the next connection
                client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        except Exception:
            log.exception("error handling MQTT disconnect")

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, reason: Any, _props: Any) -> None:
        if getattr(reason, "is_failure", False):  # MQTT 5 PUBACK with an error, e.g. not authorized
            self._bump("dropped")
            _warn.warning(f"rejected:{reason}", "broker rejected message %d: %s (counted in dropped)", mid, reason)
        else:
            self._bump("published")
        if self._courier is not None:
            self._courier.acked(mid)  # done either way: a rejected message would be rejected again

    def _subscribe(self, client: paho.Client) -> None:
        """QoS 1; with MQTT 5 a live retained command keeps its retain flag (retain-as-published), so it is refused."""
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            opts = SubscribeOptions(qos=1, retainAsPublished=True)
            _, mid = client.subscribe([(s, opts) for s in self.subscriptions])
        else:  # MQTT 3.1.1: only retained messages sent on (re)subscribing carry the flag
            _, mid = client.subscribe([(s, 1) for s in self.subscriptions])
        with self._lock:
            self._sub_mid = mid

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        """SUBACK: a topic the broker refuses (an ACL without read access) means staff commands never arrive."""
        with self._lock:
            if mid != self._sub_mid:
                return
            refused = [f"{t} ({r})" for t, r in zip(self.subscriptions, reasons, strict=False) if r.is_failure]
            changed = refused != self._refused
            self._refused = refused
        if refused and changed:
            log.error("broker refused the subscription to %s: staff acknowledgements, pauses or config for this "
                      "kiosk will not arrive (check the broker's ACL for this account)", ", ".join(refused))

    def subscription_problem(self) -> str | None:
        """The command topics the broker refused at the last subscribe, or None."""
        with self._lock:
            refused = list(self._refused)
        return f"broker refused the subscription to {', '.join(refused)}" if refused else None

    def _announce(self, client: paho.Client) -> None:
        """Publish the retained announcements (never raises: a failure is logged and connecting goes on)."""
        try:
            for t, payload in self.announce() if self.announce else ():
                client.publish(t, payload, qos=1, retain=True)
        except Exception:  # noqa: BLE001
            log.exception("could not publish the Home Assistant discovery config")

    def _on_message(self, client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.birth_topic:  # not a command: a retained birth message is fine
            if bytes(msg.payload) == b"online":
                self._announce(client)
            return
        if self.on_message is None:
            return
        if msg.retain:  # a command kept by the broker would be re-applied on every reconnect: refused, counted
            self._bump("inbound_retained")
            level = logging.DEBUG if msg.topic in self._retained_warned else logging.WARNING
            self._retained_warned.add(msg.topic)  # bounded: the topics subscribed to
            log.log(level, "refused retained message on %s: commands must be published without retain "
                    "(counted in health.drops.inbound_retained; logged once per topic)", msg.topic)
            return
        try:
            self.on_message(msg.topic, bytes(msg.payload))
        except Exception:
            log.exception("message handler failed for %s", msg.topic)

    def _send_row(self, row: Row) -> int | None:
        """Hand one outbox row to paho (sender thread); its message id, or None if paho refused it for now."""
        client = self._client
        if client is None:
            return None
        info = client.publish(row.topic, row.payload, qos=1, retain=row.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            log.debug("paho queue full; outbox row %d retried later", row.seq)
            return None
        return info.mid  # success, or NO_CONN (connection just lost): the row is resent after reconnecting

    def publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Validate, queue in the outbox and wake the sender (QoS 1) without blocking; False if refused (invalid)."""
        data = self._encode(kind, payload)
        if data is None:
            return False
        t = self.topic(kind)
        if kind == "status":  # never queued: superseded by the fresh `online` status sent on reconnect
            client = self._client
            with self._lock:
                connected = self._connected
                if not connected and self._connecting:  # after the connect's snapshot: sent once it is done
                    self._late_status = (t, data)
            if connected and client is not None:
                client.publish(t, data, qos=1, retain=True)
            return True
        outbox = self._open_outbox()
        seq = outbox.add(kind, t, data, retain)
        log.debug("queued %s event %s as outbox row %d", kind, payload.get("event_id"), seq)
        assert self._courier is not None
        self._courier.notify()
        return True

    def stats(self) -> dict[str, int]:
        """Counters: connects, published (acked), dropped (outbox limits, broker rejections), refused, retained."""
        out = super().stats()
        if self.outbox is not None:
            out["dropped"] += sum(v for k, v in self.outbox.stats().items()
                                  if k not in ("rows", "bytes", "errors", "stranded"))
        return out

    def outbox_stats(self) -> dict[str, int]:
        """Outbox rows, bytes, drops per kind, database errors and rows stranded in a failed database."""
        return self.outbox.stats() if self.outbox is not None else {}

    def outbox_problem(self) -> str | None:
        """Why the outbox database is not in use (it keeps trying), or None."""
        return self.outbox.problem if self.outbox is not None else None

    def stop(self) -> None:
        """Flush the outbox and publish the retained `offline` status (bounded waits), then disconnect and close."""
        self._stop(retire=False)

    def retire(self, connect_wait_s: float = 10.0) -> None:
        """Stop a short-lived publisher (``replay --publish``): wait up to ``connect_wait_s`` for a connection when
        events are queued, flush them, and *clear* the retained status instead of leaving an ``offline`` one (a
        replay's kiosk id is not a kiosk: fleet tools would list it as down for ever). ``unsent`` counts what was
        not delivered."""
        deadline = time.monotonic() + connect_wait_s
        while (not self._connected and self.outbox is not None and len(self.outbox)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self._stop(retire=True)

    def _stop(self, retire: bool) -> None:
        client = self._client
        self._stopping = True
        try:
            if client is not None and self._connected:
                if self._courier is not None and not self._courier.wait_idle(STOP_FLUSH_S):
                    log.warning("queued events not all acknowledged within %.1f s", STOP_FLUSH_S)
                # an empty retained payload deletes the retained status (MQTT), so a retired id leaves nothing
                info = client.publish(self.status_topic, b"" if retire else self._status("offline"), qos=1,
                                      retain=True)
                info.wait_for_publish(timeout=STOP_FLUSH_S)
                if not info.is_published():
                    log.warning("offline status not acknowledged within %.1f s", STOP_FLUSH_S)
        except Exception:
            log.exception("could not publish offline status")
        finally:
            if client is not None:
                client.disconnect()
                # paho joins its network thread without a timeout: stuck in a DNS lookup (network down, broker by
                # name) it held shutdown past systemd's TimeoutStopSec; the thread is a daemon, leave it then
                stopper = threading.Thread(target=client.loop_stop, daemon=True, name="mqtt-loop-stop")
                stopper.start()
                stopper.join(STOP_FLUSH_S)
                if stopper.is_alive():
                    log.warning("MQTT network thread still busy after %.1f s (a DNS lookup?); not waiting for it",
                                STOP_FLUSH_S)
            with self._lock:
                self._connected = False
                self._client = None
            if self._courier is not None:
                self._courier.stop()
            if self.outbox is not None:
                self.unsent = len(self.outbox) if not self.outbox.persistent else 0
                if len(self.outbox):
                    log.warning("%d unacknowledged event(s) %s", len(self.outbox), "kept in the outbox for the next "
                                "start" if self.outbox.persistent else "lost (no state folder)")
                self.outbox.close()
            self.outbox, self._courier = None, None
            log.info("MQTT publisher stopped")
