"""A status or health body the schema refuses never cuts the kiosk off MQTT (issue 20, item 1).

Against a real mosquitto: the service process with a camera pipeline whose error is longer than a ``degraded``
item may be, and the publisher with a status body that can never validate. Either way the kiosk subscribes
(a staff pause takes effect), flushes its outbox and publishes a schema-valid retained ``online``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import Kiosk, until, write_toml

from edge.config import IdentityConfig, MqttConfig
from edge.demo.media import make_demo
from edge.events import EventFactory, load_schema, validate
from edge.transport.mqtt import MqttPublisher

SITE, KIOSK = "site-h", "kiosk-h"
BASE = f"edge-emotion/{SITE}/{KIOSK}"
# The pipeline from the field report, made longer by a caps filter: OpenCV cannot open it (no GStreamer in this
# build, or no libcamera), and its error message is well over the 200 characters of a `degraded` item.
PIPELINE = ("libcamerasrc camera-name=/base/soc/i2c0mux/i2c@1/imx708@1a ! video/x-raw,width=1280,height=720,"
            "framerate=30/1,format=NV12,colorimetry=bt709,interlace-mode=progressive ! videoconvert ! "
            "videoscale ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1")


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("media"), seconds=6.0)[1]


def test_long_camera_error_keeps_the_kiosk_on_mqtt(mosquitto: Broker, subscribe: Any, audio: Path,
                                                   tmp_path: Path) -> None:
    mosquitto.stop()  # the camera fails before the kiosk first connects, as on a kiosk that boots faster
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": PIPELINE, "kind": "gstreamer", "reopen_min_s": 0.2, "reopen_max_s": 0.5},
        "microphone": {"source": str(audio), "loop": True},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0,
                 "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
        "state": {"dir": str(tmp_path / "state")}})
    kiosk = Kiosk(cfg, tmp_path / "kiosk.log")
    try:
        until(lambda: "reopening with back-off" in kiosk.text(), 60, "the camera error")
        mosquitto.start()
        sub = subscribe(mosquitto, f"{BASE}/#")
        online = sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"online"' in m.payload, timeout=20)
        body = json.loads(online.payload)
        validate("status", body)
        cam = [d for d in body["degraded"] if d.startswith("camera:")]
        assert cam and "libcamerasrc" in cam[0], body["degraded"]
        sub.wait_for(lambda m: m.topic == f"{BASE}/health", timeout=20)  # the outbox flushes
        sub.client.publish(f"{BASE}/pause", b'{"action": "pause", "by": "tablet"}', qos=1)
        paused = sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"paused":true' in m.payload, timeout=10)
        validate("status", json.loads(paused.payload))
        health = [json.loads(m.payload) for m in sub.messages if m.topic == f"{BASE}/health"][-1]
        validate("health", health)
        assert "libcamerasrc" in health["sources"]["camera"]["error"]
        assert kiosk.proc.poll() is None
    finally:
        code = kiosk.stop()
    assert code == 0, kiosk.text()[-3000:]
    assert "error handling MQTT connect" not in kiosk.text()


@pytest.fixture
def bad_publisher(mosquitto: Broker, tmp_path: Path) -> Iterator[tuple[MqttPublisher, list[tuple[str, bytes]]]]:
    identity = IdentityConfig(site_id=SITE, kiosk_id=KIOSK, counter_name="Counter H")
    cfg = MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.2, reconnect_max_s=0.5)
    long_item = "camera: reopening (" + "x" * 400 + ")"
    received: list[tuple[str, bytes]] = []
    pub = MqttPublisher(cfg, identity, EventFactory(identity),
                        lambda: {"version": "0.1.0", "counter_name": "Counter H", "models": {"face": "f" * 100},
                                 "degraded": [long_item]},
                        on_message=lambda t, p: received.append((t, p)), subscriptions=[f"{BASE}/pause"],
                        state_dir=tmp_path / "state")
    yield pub, received
    pub.stop()


def test_refused_status_body_neither_stops_subscriptions_nor_the_outbox(
        bad_publisher: tuple[MqttPublisher, list[tuple[str, bytes]]], mosquitto: Broker, subscribe: Any) -> None:
    pub, received = bad_publisher
    sub = subscribe(mosquitto, f"{BASE}/#")
    factory = pub.factory
    health = {"uptime_s": 1.0, "fps_in": 0.0, "fps_analysed": 0.0, "voice_windows": 0, "latency_ms": {},
              "drops": {}, "queue_depth": {}, "cpu_temp_c": None, "models": {},
              "sources": {"camera": {"state": "ok", "error": None}, "microphone": {"state": "ok", "error": None}},
              "mqtt": {"connects": 0, "published": 0, "dropped": 0, "refused": 0}}
    for _ in range(3):  # queued before the connection: flushed after it
        assert pub.publish("health", factory.make("health", **health))
    pub.start()
    online = sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"online"' in m.payload, timeout=10)
    body = json.loads(online.payload)
    validate("status", body)
    limit = load_schema("status")["properties"]["degraded"]["items"]["maxLength"]
    assert any(d.startswith("status:") for d in body["degraded"]) and all(len(d) <= limit for d in body["degraded"])
    until(lambda: sum(m.topic.endswith("/health") for m in sub.messages) >= 3, 10, "the queued health events")
    until(lambda: pub.connected, 5, "connected")
    sub.client.publish(f"{BASE}/pause", b'{"action": "pause"}', qos=1)
    until(lambda: bool(received), 5, "the subscription to deliver the pause command")
    assert pub.stats()["refused"] >= 1
