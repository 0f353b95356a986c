"""After a reconnect the broker keeps the newest retained state: paho's own re-send of what the last connection left
unacknowledged came after the fresh ``online`` status (a staff pause undone while offline stayed on the broker as
``paused``) and beside the outbox's re-send (events twice)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from conftest import Broker
from kiosk_proc import until

from edge.config import IdentityConfig, MqttConfig
from edge.events import EventFactory
from edge.transport.mqtt import MqttPublisher


def test_a_status_left_unacknowledged_does_not_outlive_a_newer_one(mosquitto: Broker, subscribe: Any) -> None:
    state = {"paused": False}
    ident = IdentityConfig(site_id="s", kiosk_id="k", counter_name="C")
    factory = EventFactory(ident)

    def body() -> dict[str, Any]:
        return {"version": "0.1.0", "counter_name": "C", "models": {}, "degraded": [], "paused": state["paused"]}

    pub = MqttPublisher(MqttConfig(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.2,
                                   reconnect_max_s=0.5, keepalive_s=5), ident, factory, body)
    pub.start()
    try:
        until(lambda: pub.connected, 10, "the first connection")
        assert mosquitto.proc is not None
        os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # the link stalls: nothing is acknowledged
        state["paused"] = True  # staff pause: sent, never acknowledged
        pub.publish("status", factory.make("status", state="online", **body()))
        time.sleep(0.3)
        mosquitto.stop()
        until(lambda: not pub.connected, 10, "the broken connection to be seen")
        state["paused"] = False  # staff resume while offline
        mosquitto.start()
        until(lambda: pub.connected, 10, "the reconnection")
        time.sleep(1.0)  # paho re-sent what it kept here, after the fresh status
        sub = subscribe(mosquitto, pub.status_topic)
        got = sub.wait_for(lambda m: m.retain)
        assert json.loads(got.payload)["paused"] is False, "an older retained status outlived the newer one"
    finally:
        pub.stop()
