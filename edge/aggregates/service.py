"""The aggregates service: an MQTT subscriber (paho's thread), a writer thread folding into SQLite, the web side."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from prometheus_client import CollectorRegistry

from edge.aggregates.config import AggregatesConfig
from edge.aggregates.fold import Folder
from edge.aggregates.metrics import AggregatesCollector
from edge.aggregates.store import Store
from edge.aggregates.web import WebServer, make_handler
from edge.lograte import RateLimitedLog
from edge.ops.broker_client import Broker, connect, make_client
from edge.queues import DropQueue
from edge.transport.mqtt_config import bounded_client_id

log = logging.getLogger(__name__)
KINDS = ("visit", "alert", "ack", "emotion", "health")  # emotion/health only advance each kiosk's clock (acks)
COUNTED = ("visit", "alert", "ack")  # QoS 1, kept by the broker while this service is down, never dropped here
BATCH = 500  # messages folded per SQLite transaction at most
KIOSK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a topic's kiosk level, as identity.kiosk_id allows
MAX_PAYLOAD_BYTES = 64 * 1024  # kiosk events are a few KiB; anything larger is not one (counted as not_json)
_warn = RateLimitedLog(log)


class AggregatesService:
    """Subscribe to one site, keep hourly figures, serve them; ``stop()`` ends everything."""

    def __init__(self, cfg: AggregatesConfig, broker: Broker, clock: Callable[[], float] = time.time) -> None:
        """Open the database and bind the web port (no network traffic yet)."""
        self.cfg, self.broker = cfg, broker
        self.store = Store(cfg.db, cfg.site_id)
        self.folder = Folder(cfg.zone(), bool(cfg.per_counter), cfg.care_share, wall=clock)
        # open episodes of the last run are continued, its counted event ids stay duplicates, its kiosk clocks hold
        self.folder.restore(self.store.episodes(), self.store.seen_ids(), self.store.kiosk_clocks())
        # paho -> writer: (kind, kiosk, payload, mid of a QoS 1 message to acknowledge once stored, else None).
        # Drop rule: when full, a new emotion/health message (QoS 0, only a kiosk clock) is dropped and counted;
        # a visit, alert or ack waits for room (back-pressure: the broker keeps what is not acknowledged), so a
        # backlog replayed after a restart is stored whole. The broker is also asked to send at most
        # `receive_maximum` unacknowledged messages at once (mosquitto 2.0.11 was measured to exceed it for
        # messages it queued while this service was down, hence the wait).
        self.queue: DropQueue[tuple[str, str, Any, int | None]] = DropQueue(cfg.queue_size)
        self.receive_maximum = max(1, min(1000, cfg.queue_size // 2))
        self.waited = 0  # counted messages that had to wait for room in the queue
        self._closing = False
        self.received = self.folded = self.not_json = 0
        self.registry = CollectorRegistry()
        self.registry.register(AggregatesCollector(self.store, bool(cfg.per_counter), self.stats, cfg.min_visits))
        self.web = WebServer(cfg.http_host, cfg.http_port,
                             make_handler(self.store, self.registry, bool(cfg.per_counter), cfg.zone(), clock,
                                          cfg.min_visits))
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="aggregates-writer", daemon=True)
        self.client: paho.Client | None = None
        self._base = f"{cfg.topic_prefix}/{cfg.site_id}/"

    def stats(self) -> dict[str, int]:
        """Messages by outcome (the /metrics family ``edge_emotion_aggregates_messages_total``)."""
        return {"received": self.received, "folded": self.folded, "not_json": self.not_json,
                "dropped": self.queue.dropped, "waited": self.waited, **self.folder.counts}

    def _on_message(self, c: paho.Client | None, _u: Any, msg: paho.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: the broker sends it again to the next run (its session)
        mid = msg.mid if msg.qos > 0 else None
        item = self._parse(msg)
        if item is None:
            self._ack(c, mid)  # nothing to store: done with it
            return
        if item[0] not in COUNTED:
            if not self.queue.offer((*item, mid)):
                self.queue.dropped += 1  # a kiosk clock reading: the next one will do
                self._ack(c, mid)
            return
        if not self.queue.offer((*item, mid)):
            self.waited += 1
            while not self.queue.offer((*item, mid), timeout=0.5):
                if self._closing:
                    return  # not acknowledged: the broker sends it again to the next run

    def _parse(self, msg: paho.MQTTMessage) -> tuple[str, str, Any] | None:
        if not msg.topic.startswith(self._base):
            return None
        parts = msg.topic[len(self._base):].split("/")
        if len(parts) != 2 or parts[1] not in KINDS or not KIOSK_ID.match(parts[0]):
            return None  # (an empty kiosk level would land in the whole-site rows twice)
        self.received += 1
        try:
            if len(msg.payload) > MAX_PAYLOAD_BYTES:
                raise ValueError("too large")
            return parts[1], parts[0], json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: hostile nesting
            self.not_json += 1
            return None

    @staticmethod
    def _ack(client: paho.Client | None, mid: int | None) -> None:
        if client is not None and mid is not None:
            client.ack(mid, 1)

    def _subscribe(self, c: paho.Client) -> None:
        # QoS 0 for the clock-only kinds: the broker does not queue them while this service is down, so they
        # cannot crowd the visits and alerts out of its per-client queue (max_queued_messages)
        c.subscribe([(self._base + f"+/{k}", 1 if k in COUNTED else 0) for k in KINDS])

    def start(self) -> None:
        """Start the writer and the web server, then connect (ConnectionError, one line, if the broker is unusable)."""
        self._writer.start()
        self.web.start()
        client = make_client(self.broker, client_id=bounded_client_id(f"edge-emotion-aggregates-{self.cfg.site_id}",
                                                                          f"aggregates/{self.cfg.site_id}"),
                             manual_ack=True)  # a message is acknowledged once it is in the database
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        connect(client, self.broker, on_ready=self._subscribe, session_expiry_s=self.cfg.session_expiry_s,
                receive_maximum=self.receive_maximum)
        log.info("aggregating site %s from %s into %s; page on http://%s:%d/", self.cfg.site_id, self.broker.where(),
                 self.cfg.db, self.cfg.http_host, self.web.port)

    def _write_loop(self) -> None:
        while not self._stop.is_set() or self.queue.qsize():
            self.drain(timeout=0.5)

    def drain(self, timeout: float = 0.0) -> int:
        """Fold up to BATCH queued messages into the store in one transaction; how many were taken."""
        batch: list[tuple[str, str, Any, int | None]] = []
        item = self.queue.get(timeout=timeout)
        while item is not None and len(batch) < BATCH:
            batch.append(item)
            item = self.queue.get(timeout=0) if len(batch) < BATCH else None
        if not batch:
            return 0
        incs = []
        for kind, kiosk, payload, _mid in batch:
            try:
                incs += self.folder.fold(kind, kiosk, payload)
            except Exception as exc:  # noqa: BLE001 - one odd message must not end the writer; counted, logged
                self.folder.counts["invalid"] += 1
                _warn.warning("fold", "could not fold a %s message from %s (%s: %s); ignored", kind, kiosk,
                              type(exc).__name__, exc)
        try:
            self.store.add(incs, self.folder.take_changed(), self.folder.take_new_ids(), dict(self.folder.kiosk_now))
        except Exception:  # noqa: BLE001 - a database error must not end the writer; the batch is lost, logged
            log.exception("could not store %d aggregate increments", len(incs))
        for *_, mid in batch:  # stored (or logged as lost): the broker may forget them
            self._ack(self.client, mid)
        self.folded += len(batch)
        return len(batch)

    def stop(self) -> None:
        """Take no more messages, store (and acknowledge) what is queued, disconnect, stop the page, close the
        database. What arrives meanwhile is not acknowledged: the broker keeps it for the next run."""
        self._closing = True
        self._stop.set()
        if self._writer.is_alive():
            self._writer.join(60)
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
        self.web.stop()
        if self._writer.is_alive():  # still folding after a minute: leave the database to it (the process ends)
            log.error("stopping with %d messages not stored; the broker sends them again (not acknowledged)",
                      self.queue.qsize())
            return
        self.store.close()
