"""``edge-emotion fleet exporter``: every kiosk's health as Prometheus metrics (a subscriber and a /metrics page)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.events import SchemaError, validate
from edge.events.inbound import has_oversized_number
from edge.ops.broker_client import Broker, connect, decode_json, make_client

log = logging.getLogger(__name__)
KINDS = ("status", "health")
MAX_KIOSKS = 10_000  # a bound on remembered kiosks (a topic flood cannot grow memory without end)
QUANTILES = {"p50": "0.5", "p95": "0.95"}
CLOSED = "analysis: outside opening hours"  # the retained status's degraded item (edge/pipeline/status.py)


@dataclass
class KioskState:
    """The latest retained status and health of one kiosk, and when each arrived (exporter's clock)."""

    status: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    health_at: float | None = None
    status_at: float | None = None


MAX_LABELS = 64  # stage/queue label values kept per family and kiosk: a health message sets the series count
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def bounded_labels(health: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``health`` with its ``latency_ms``/``queue_depth``/``drops`` keys limited to MAX_LABELS plain names each
    (the schema allows any number): a copy, and how many keys were left out."""
    out, cut = dict(health), 0
    for family in ("latency_ms", "queue_depth", "drops"):
        keys = [k for k in sorted(health[family]) if _LABEL.match(k)]
        cut += len(health[family]) - min(len(keys), MAX_LABELS)
        out[family] = {k: health[family][k] for k in keys[:MAX_LABELS]}
    return out, cut


class FleetCollector(Collector):
    """Turns the latest messages into metric families at every scrape (labels: site, kiosk, …)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """An empty fleet; ``clock`` stamps arrivals (health age; monotonic: a clock step is not an age)."""
        self.clock = clock
        self.kiosks: dict[tuple[str, str], KioskState] = {}
        self.lock = threading.Lock()
        self.counts = {"received": 0, "invalid": 0, "ignored": 0}

    def update(self, site: str, kiosk: str, kind: str, payload: Any) -> None:
        """Take one message (any thread): a schema-valid ``status`` or ``health`` replaces the kiosk's last one."""
        try:
            validate(kind, payload)
        except SchemaError:
            self.counts["invalid"] += 1
            return
        if has_oversized_number(payload):  # float() of it would fail every scrape, for the whole fleet
            self.counts["invalid"] += 1
            return
        with self.lock:
            self.counts["received"] += 1
            state = self.kiosks.get((site, kiosk))
            if state is None:
                if len(self.kiosks) >= MAX_KIOSKS:
                    self.counts["ignored"] += 1
                    return
                state = self.kiosks[(site, kiosk)] = KioskState()
            if kind == "status":
                state.status, state.status_at = payload, self.clock()
            else:
                payload, cut = bounded_labels(payload)
                self.counts["ignored"] += cut
                state.health, state.health_at = payload, self.clock()

    def forget(self, site: str, kiosk: str) -> None:
        """Drop a kiosk (its retained status was cleared: retired), so it is no longer reported offline."""
        with self.lock:
            if self.kiosks.pop((site, kiosk), None) is not None:
                self.counts["forgotten"] = self.counts.get("forgotten", 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The fleet's families."""
        with self.lock:
            items = sorted((k, KioskState(v.status, v.health, v.health_at, v.status_at))
                           for k, v in self.kiosks.items())
            counts = dict(self.counts)
        now = self.clock()
        lab = ["site", "kiosk"]
        g = {name: GaugeMetricFamily(f"edge_emotion_kiosk_{name}", doc, labels=lab) for name, doc in (
            ("up", "1 when the retained status says online, 0 when offline."),
            ("health_age_seconds", "Seconds since the kiosk's last health message reached the exporter (before the "
             "first one: since its retained online status did, so a kiosk that died while the broker was down "
             "ages too)."),
            ("fps_in", "Camera frames received per second."), ("fps_analysed", "Camera frames analysed per second."),
            ("uptime_seconds", "Seconds since the kiosk service started."),
            ("cpu_temp_celsius", "CPU temperature."), ("paused", "1 while staff have paused analysis."),
            ("closed", "1 outside the kiosk's opening hours (schedule): nothing is analysed, as when paused."),
            ("degraded", "Number of things not working fully (retained status `degraded`)."))}
        latency = GaugeMetricFamily("edge_emotion_kiosk_latency_ms", "Per-stage processing latency quantiles (ms).",
                                    labels=[*lab, "stage", "quantile"])
        depth = GaugeMetricFamily("edge_emotion_kiosk_queue_depth", "Current queue depths; queue=\"outbox\": events "
                                  "waiting for the broker.", labels=[*lab, "queue"])
        drops = CounterMetricFamily("edge_emotion_kiosk_drops", "Items dropped since the kiosk started, per queue or "
                                    "stage.", labels=[*lab, "queue"])
        source = GaugeMetricFamily("edge_emotion_kiosk_source_ok", "1 when a capture source is ok (state label).",
                                   labels=[*lab, "source", "state"])
        for (site, kiosk), st in items:
            k = [site, kiosk]
            if st.status is not None:
                g["up"].add_metric(k, 1.0 if st.status["state"] == "online" else 0.0)
                g["paused"].add_metric(k, 1.0 if st.status.get("paused") else 0.0)
                g["closed"].add_metric(k, 1.0 if CLOSED in st.status["degraded"] else 0.0)
                g["degraded"].add_metric(k, float(len(st.status["degraded"])))
            h = st.health
            if h is None or st.health_at is None:
                if st.status is not None and st.status["state"] == "online" and st.status_at is not None:
                    g["health_age_seconds"].add_metric(k, max(0.0, now - st.status_at))
                continue
            g["health_age_seconds"].add_metric(k, max(0.0, now - st.health_at))
            g["fps_in"].add_metric(k, float(h["fps_in"]))
            g["fps_analysed"].add_metric(k, float(h["fps_analysed"]))
            g["uptime_seconds"].add_metric(k, float(h["uptime_s"]))
            if h.get("cpu_temp_c") is not None:
                g["cpu_temp_celsius"].add_metric(k, float(h["cpu_temp_c"]))
            for stage, q in sorted(h["latency_ms"].items()):
                for key, quantile in QUANTILES.items():
                    latency.add_metric([*k, stage, quantile], float(q[key]))
            for queue, n in sorted(h["queue_depth"].items()):
                depth.add_metric([*k, queue], float(n))
            for queue, n in sorted(h["drops"].items()):
                drops.add_metric([*k, queue], float(n))
            for name, s in sorted(h["sources"].items()):
                source.add_metric([*k, name, s["state"]], 1.0 if s["state"] == "ok" else 0.0)
        yield from g.values()
        yield from (latency, depth, drops, source)
        own = CounterMetricFamily("edge_emotion_exporter_messages", "Messages the exporter took, by outcome.",
                                  labels=["outcome"])
        for outcome, n in sorted(counts.items()):
            own.add_metric([outcome], float(n))
        yield own


def subscribe(collector: FleetCollector, broker: Broker, prefix: str, site: str | None) -> paho.Client:
    """Connect and feed ``collector`` from PREFIX/SITE/+/{status,health} (ConnectionError, one line)."""
    base = prefix + "/"

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic[len(base):].split("/") if msg.topic.startswith(base) else []
        if len(parts) != 3 or parts[2] not in KINDS:
            return
        if not msg.payload and parts[2] == "status":  # retained status cleared (a retired kiosk): forget it
            collector.forget(parts[0], parts[1])
            return
        try:
            payload = decode_json(msg.payload)
        except ValueError:
            collector.counts["invalid"] += 1
            return
        collector.update(parts[0], parts[1], parts[2], payload)  # cheap: keeps paho's thread free

    client = make_client(broker)
    client.on_message = on_message
    client.reconnect_delay_set(1, 30)
    connect(client, broker, on_ready=lambda c: c.subscribe([(f"{base}{site or '+'}/+/{k}", 1) for k in KINDS]))
    return client


def add_subcommand(fsub: Any) -> None:
    """Register ``fleet exporter`` on the ``fleet`` subparsers."""
    from edge.ops.broker_client import add_broker_options

    ex = fsub.add_parser("exporter", help="every kiosk's health as Prometheus metrics on /metrics")
    add_broker_options(ex, password_env="EDGE_EMOTION_FLEET_PASSWORD")
    ex.add_argument("--site", help="one site id (default: every site)")
    ex.add_argument("--prefix", default="edge-emotion", help="topic prefix (mqtt.topic_prefix)")
    ex.add_argument("--listen-host", default="127.0.0.1", help="address of /metrics (0.0.0.0: every interface)")
    ex.add_argument("--listen-port", type=int, default=9108, help="port of /metrics (default 9108)")
    ex.set_defaults(func=_cmd_exporter)


def serve(collector: FleetCollector, host: str, port: int) -> Any:
    """Serve the collector's /metrics in a background thread; the server (``.server_address``, ``.shutdown()``)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(collector)
    server, _thread = start_http_server(port, host, registry)
    return server


def _cmd_exporter(args: Any) -> int:
    import signal
    import sys

    from edge.ops.broker_client import broker_from_args

    collector = FleetCollector()
    try:
        server = serve(collector, args.listen_host, args.listen_port)
    except OSError as exc:
        print(f"fleet exporter: cannot listen on {args.listen_host}:{args.listen_port}: {exc}", file=sys.stderr)
        return 1
    try:
        client = subscribe(collector, broker_from_args(args), args.prefix, args.site)
    except ConnectionError as exc:
        print(f"fleet exporter: {exc}", file=sys.stderr)
        server.shutdown()
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"fleet exporter: http://{args.listen_host}:{server.server_address[1]}/metrics", flush=True)
    stop.wait()
    client.disconnect()
    client.loop_stop()
    server.shutdown()
    return 0
