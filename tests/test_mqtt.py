"""MqttPublisher against a real mosquitto: status/will, QoS 1, refusals, reconnects, auth, offline queue."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, Message, Subscriber, free_port, sample_body

from edge.config import IdentityConfig, MqttConfig
from edge.events import EventFactory, validate
from edge.transport.mqtt import LogPublisher, MqttPublisher, RecordingPublisher

ROOT = Path(__file__).resolve().parent.parent
STATUS = {"version": "0.1.0", "counter_name": "Counter 3", "models": {"face": "fer-1"}, "degraded": []}


def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def make_pub(port: int, kiosk: str, **mqtt: Any) -> MqttPublisher:
    identity = IdentityConfig(site_id="site-a", kiosk_id=kiosk, counter_name="Counter 3")
    cfg = MqttConfig(host="127.0.0.1", port=port, reconnect_min_s=0.2, reconnect_max_s=0.5, keepalive_s=5, **mqtt)
    return MqttPublisher(cfg, identity, EventFactory(identity), lambda: dict(STATUS))


def state_is(state: str, retained: bool | None = None) -> Callable[[Message], bool]:
    def pred(m: Message) -> bool:
        p = json.loads(m.payload)
        return m.topic.endswith("/status") and p["state"] == state and (retained is None or m.retain == retained)
    return pred


def event(pub: MqttPublisher, kind: str, **changes: Any) -> dict[str, Any]:
    return pub.factory.make(kind, **{**sample_body(kind), **changes})


class Gate:
    """A TCP forwarder to the broker that can be opened/closed; may answer MQTT 5 CONNECTs with 'bad version'."""

    def __init__(self, target_port: int, reject_v5: bool = False) -> None:
        self.port, self.target, self.reject_v5 = free_port(), target_port, reject_v5
        self.levels: list[int] = []
        self._srv: socket.socket | None = None
        self._socks: list[socket.socket] = []

    def open(self) -> None:
        self._srv = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._srv,), daemon=True).start()

    def close(self) -> None:
        for s in [self._srv, *self._socks]:
            if s is not None:
                s.close()
        self._srv, self._socks = None, []

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            head = conn.recv(1)
            mult, length, n = 1, 0, 128
            while n & 128:
                b = conn.recv(1)
                head += b
                n = b[0]
                length += (n & 127) * mult
                mult *= 128
            body = b""
            while len(body) < length:
                body += conn.recv(length - len(body))
            self.levels.append(body[6])
            if self.reject_v5 and body[6] == 5:
                conn.sendall(b"\x20\x02\x00\x01")  # 3.1.1 CONNACK: unacceptable protocol version
                conn.close()
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            self._socks.append(up)
            up.sendall(head + body)
            threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
            self._pump(conn, up)
        except OSError:
            conn.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()


def test_online_is_retained_and_events_arrive_with_qos1(mosquitto: Broker, subscribe):
    pub = make_pub(mosquitto.port, "k-online")
    pub.start()
    try:
        until(lambda: pub.connected and pub.stats()["published"] >= 1)  # the broker has the `online` status
        late = subscribe(mosquitto, "edge-emotion/site-a/k-online/#")  # ... so it arrives as a retained message
        online = late.wait_for(state_is("online"))
        assert online.retain and online.topic == "edge-emotion/site-a/k-online/status"
        validate("status", json.loads(online.payload))
        sent = [event(pub, "emotion"), event(pub, "alert"), event(pub, "visit")]
        for p in sent:
            assert pub.publish(p["schema"].split("/")[1], p)
        for p in sent:
            kind = p["schema"].split("/")[1]
            m = late.wait_for(lambda m, p=p: json.loads(m.payload)["event_id"] == p["event_id"])
            assert (m.topic, m.qos, m.retain) == (f"edge-emotion/site-a/k-online/{kind}", 1, False)
            validate(kind, json.loads(m.payload))
        until(lambda: pub.stats()["published"] == 4)
        assert pub.stats() == {"connects": 1, "published": 4, "dropped": 0, "refused": 0,
                               "inbound_retained": 0}
    finally:
        pub.stop()


def test_invalid_payload_is_refused_and_never_sent(mosquitto: Broker, subscribe, caplog):
    sub = subscribe(mosquitto, "edge-emotion/#")
    pub = make_pub(mosquitto.port, "k-invalid")
    pub.start()
    try:
        until(lambda: pub.connected)
        bad = event(pub, "emotion")
        bad["face_crop"] = "base64..."
        assert pub.publish("emotion", bad) is False
        assert pub.publish("alert", event(pub, "emotion")) is False  # valid emotion, wrong kind
        marker = event(pub, "emotion")
        assert pub.publish("emotion", marker)
        sub.wait_for(lambda m: json.loads(m.payload)["event_id"] == marker["event_id"])
        assert all(b"face_crop" not in m.payload and not m.topic.endswith("/alert") for m in sub.messages)
        assert pub.stats()["refused"] == 2
        assert "refused to publish emotion event" in caplog.text and "face_crop" in caplog.text
    finally:
        pub.stop()


def test_clean_stop_publishes_retained_offline(mosquitto: Broker, subscribe):
    pub = make_pub(mosquitto.port, "k-stop")
    pub.start()
    until(lambda: pub.connected)
    t0 = time.monotonic()
    pub.stop()
    assert time.monotonic() - t0 < 3 and not pub.connected
    m = subscribe(mosquitto, "edge-emotion/site-a/k-stop/status").wait_for(state_is("offline"))
    assert m.retain
    validate("status", json.loads(m.payload))


def test_last_will_offline_when_the_process_dies(mosquitto: Broker, subscribe):
    sub = subscribe(mosquitto, "edge-emotion/site-a/k-will/status")
    script = (
        "import sys, time\n"
        "from edge.config import IdentityConfig, MqttConfig\n"
        "from edge.events import EventFactory\n"
        "from edge.transport.mqtt import MqttPublisher\n"
        "ident = IdentityConfig(site_id='site-a', kiosk_id='k-will')\n"
        f"pub = MqttPublisher(MqttConfig(host='127.0.0.1', port={mosquitto.port}), ident, EventFactory(ident),\n"
        f"                    lambda: {STATUS!r})\n"
        "pub.start()\n"
        "while not pub.connected: time.sleep(0.02)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        sub.wait_for(state_is("online"))
        assert not any(state_is("offline")(m) for m in sub.messages)
        proc.kill()
        will = sub.wait_for(state_is("offline"))
        validate("status", json.loads(will.payload))
    finally:
        proc.kill()
        proc.wait()
    assert subscribe(mosquitto, "edge-emotion/site-a/k-will/status").wait_for(state_is("offline")).retain


def test_reconnects_after_broker_restart_and_flushes_queue(mosquitto: Broker, subscribe):
    pub = make_pub(mosquitto.port, "k-restart")
    pub.start()
    try:
        until(lambda: pub.connected)
        first = json.loads(subscribe(mosquitto, "edge-emotion/site-a/k-restart/status").wait_for(state_is("online"))
                           .payload)
        mosquitto.stop()
        until(lambda: not pub.connected)
        queued = event(pub, "emotion")
        assert pub.publish("emotion", queued, retain=True)  # retained so a later subscriber can check it arrived
        mosquitto.start()
        until(lambda: pub.connected and pub.stats()["connects"] == 2, timeout=8)
        sub = subscribe(mosquitto, "edge-emotion/site-a/k-restart/#")
        # the new `online` may reach this subscriber live (if it subscribed first) or retained (if it came later)
        again = json.loads(sub.wait_for(
            lambda m: state_is("online")(m) and json.loads(m.payload)["event_id"] != first["event_id"]).payload)
        kept = subscribe(mosquitto, "edge-emotion/site-a/k-restart/status").wait_for(state_is("online", retained=True))
        assert json.loads(kept.payload)["event_id"] == again["event_id"]
        got = sub.wait_for(lambda m: m.topic.endswith("/emotion"))
        assert json.loads(got.payload)["event_id"] == queued["event_id"]
    finally:
        pub.stop()


def test_offline_queue_keeps_the_newest(mosquitto: Broker, subscribe):
    gate = Gate(mosquitto.port)
    pub = make_pub(gate.port, "k-queue", max_queued=10)
    sub = subscribe(mosquitto, "edge-emotion/site-a/k-queue/emotion")
    pub.start()
    try:
        sent = [event(pub, "emotion", escalation=i / 20) for i in range(15)]
        assert all(pub.publish("emotion", p) for p in sent)
        assert pub.stats()["dropped"] == 5 and not pub.connected
        gate.open()
        until(lambda: pub.connected)
        sub.wait_for(lambda m: json.loads(m.payload)["event_id"] == sent[-1]["event_id"])
        until(lambda: pub.stats()["published"] == 11)  # 10 queued + online status
        assert [json.loads(m.payload)["event_id"] for m in sub.messages] == [p["event_id"] for p in sent[5:]]
    finally:
        pub.stop()
        gate.close()


def test_wrong_password_is_logged_and_does_not_crash(broker_factory, caplog):
    caplog.set_level(logging.INFO, logger="edge.transport.mqtt")
    broker = broker_factory(users={"kiosk": "right"})
    bad = make_pub(broker.port, "k-auth", username="kiosk", password="wrong")
    bad.start()
    try:
        until(lambda: "broker refused connection" in caplog.text)
        assert "Not authorized" in caplog.text or "Bad user name or password" in caplog.text
        assert not bad.connected and bad.last_error is not None
        assert bad.publish("emotion", event(bad, "emotion"))  # queued, no exception
    finally:
        bad.stop()
    good = make_pub(broker.port, "k-auth", username="kiosk", password="right")
    good.start()
    try:
        until(lambda: good.connected)
    finally:
        good.stop()


def test_websockets_transport(mosquitto: Broker, subscribe):
    pub = make_pub(mosquitto.ws_port, "k-ws", transport="websockets")
    pub.start()
    try:
        until(lambda: pub.connected and pub.stats()["published"] >= 1)  # the broker has acknowledged `online`
        subscribe(mosquitto, "edge-emotion/site-a/k-ws/status").wait_for(state_is("online", retained=True))
    finally:
        pub.stop()


def test_auto_falls_back_to_mqtt311(mosquitto: Broker, subscribe, caplog):
    gate = Gate(mosquitto.port, reject_v5=True)
    gate.open()
    pub = make_pub(gate.port, "k-311", protocol="auto")
    pub.start()
    try:
        until(lambda: pub.connected and pub.stats()["published"] >= 1)  # the broker has acknowledged `online`
        assert gate.levels[0] == 5 and gate.levels[-1] == 4
        assert "falling back to MQTT 3.1.1" in caplog.text
        subscribe(mosquitto, "edge-emotion/site-a/k-311/status").wait_for(state_is("online", retained=True))
    finally:
        pub.stop()
        gate.close()


def test_inbound_messages_reach_the_handler_and_survive_its_errors(mosquitto: Broker, caplog):
    got: list[tuple[str, bytes]] = []

    def handler(t: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        got.append((t, payload))

    identity = IdentityConfig(site_id="site-a", kiosk_id="k-in")
    cmd = "edge-emotion/site-a/k-in/ack"
    pub = MqttPublisher(MqttConfig(host="127.0.0.1", port=mosquitto.port), identity, EventFactory(identity),
                        lambda: dict(STATUS), on_message=handler, subscriptions=[cmd])
    pub.start()
    sender = Subscriber(mosquitto.host, mosquitto.port, "unused/none")
    try:
        until(lambda: pub.connected)
        until(lambda: f"{pub.client_id} 1 {cmd}" in mosquitto.log())  # broker logged the SUBSCRIBE
        sender.client.publish(cmd, b"boom", qos=1).wait_for_publish(2)
        sender.client.publish(cmd, b"ok", qos=1).wait_for_publish(2)
        until(lambda: got == [(cmd, b"ok")])
        assert "handler bug" in caplog.text and pub.connected
    finally:
        sender.close()
        pub.stop()


def test_fakes_validate_like_the_real_publisher(caplog):
    caplog.set_level(logging.INFO, logger="edge.transport.publishers")
    identity = IdentityConfig(site_id="site-a", kiosk_id="k-fake")
    factory = EventFactory(identity)
    rec = RecordingPublisher()
    rec.start()
    good = factory.make("alert", **sample_body("alert"))
    assert rec.publish("alert", good) and not rec.publish("alert", {**good, "extra": 1})
    assert rec.payloads("alert") == [good] and rec.stats()["refused"] == 1
    with pytest.raises(ValueError):
        RecordingPublisher(strict=True).publish("alert", {**good, "extra": 1})
    logp = LogPublisher("edge-emotion", identity)
    assert logp.publish("alert", good) and not logp.publish("alert", {})
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("event "))
    _, where, data = line.split(" ", 2)
    assert where == "edge-emotion/site-a/k-fake/alert" and json.loads(data) == good


def test_broker_rejections_are_counted_and_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """An ACL that denies a topic refuses every event: each is counted, the log gets a few lines, not one each."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    pub = make_pub(1, "kiosk-rej")  # never started: the callback is driven directly
    caplog.set_level(logging.WARNING, logger="edge.transport.mqtt")
    denied = ReasonCode(PacketTypes.PUBACK, "Not authorized")
    for mid in range(1, 41):
        pub._on_publish(None, None, mid, denied, None)  # type: ignore[arg-type]
    assert pub.stats()["dropped"] == 40
    lines = [r.getMessage() for r in caplog.records if "broker rejected" in r.getMessage()]
    assert 1 <= len(lines) <= 6 and "Not authorized" in lines[0]


def test_long_ids_get_distinct_client_ids_within_64_characters() -> None:
    """Cut at 64, two kiosks whose ids differed only past the cut shared a client id and kept taking over each
    other's session; short ids keep the readable form."""
    from edge.transport.mqtt import default_client_id

    site = "s" * 40
    kiosk = "counter-0001-" + "x" * 30
    a, b = default_client_id(site, kiosk), default_client_id(site, kiosk[:-1] + "y")
    assert a != b and len(a) <= 64 and len(b) <= 64 and a.startswith("edge-emotion-" + "s" * 30)
    assert default_client_id("site-1", "k1") == "edge-emotion-site-1-k1"


def test_the_aggregates_subscriber_s_client_id_is_bounded_the_same_way() -> None:
    """Its MQTT 5 session lasts a day: two long site ids cut at 64 took over each other's session."""
    from edge.transport.mqtt_config import bounded_client_id

    a = bounded_client_id("edge-emotion-aggregates-" + "s" * 45, "aggregates/" + "s" * 45)
    b = bounded_client_id("edge-emotion-aggregates-" + "s" * 44 + "t", "aggregates/" + "s" * 44 + "t")
    assert a != b and len(a) == len(b) == 64
    import inspect

    from edge.aggregates import service

    assert "bounded_client_id(" in inspect.getsource(service.AggregatesService.start)


def test_a_status_change_while_the_connect_is_handled_is_not_lost(mosquitto: Broker, subscribe) -> None:  # type: ignore[no-untyped-def]
    """The connect handler took its status snapshot, announced, then set `connected`: a status published in
    between (a staff pause) was dropped, and the retained status said not paused while the kiosk was."""
    state = {"paused": False}
    in_announce = threading.Event()

    def body() -> dict[str, Any]:
        return {"version": "0.1.0", "counter_name": "C", "models": {}, "degraded": [], "paused": state["paused"]}

    def announce() -> list[Any]:
        in_announce.set()
        time.sleep(0.3)  # a slow announcement widens the window
        return []

    ident = IdentityConfig(site_id="s", kiosk_id="k1", counter_name="C")
    f = EventFactory(ident)
    pub = MqttPublisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.2,
                                   reconnect_max_s=0.5), ident, f, body, announce=announce)
    pub.start()
    try:
        assert in_announce.wait(5)
        state["paused"] = True
        assert pub.publish("status", f.make("status", state="online", **body()))
        deadline = time.monotonic() + 5
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        sub = subscribe(mosquitto, "edge-emotion/s/k1/status")
        got = sub.wait_for(lambda m: m.retain, timeout=5)
        assert json.loads(got.payload)["paused"] is True
    finally:
        pub.stop()
