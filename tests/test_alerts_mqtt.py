"""Staff ack over a real broker: the service raises an alert, a tablet acks it, the visit summary says so."""

from __future__ import annotations

import json
import time
from typing import Any

from conftest import run_fed

from edge.config import parse_config
from edge.events import validate
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service


def test_ack_from_the_broker_reaches_the_visit_summary(mosquitto: Any, subscribe: Any) -> None:
    cfg = parse_config({
        "identity": {"site_id": "site-a", "kiosk_id": "kiosk-a", "counter_name": "Counter 1"},
        "fusion": {"half_life_s": 0.3, "emit_interval_s": 0.2, "visit_start_s": 0.2, "visit_end_s": 1.0},
        "alerts": {"sustain_s": 0.5},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
    })
    sub = subscribe(mosquitto, "edge-emotion/site-a/kiosk-a/#")
    svc = Service(cfg, Analyzers())  # no capture: observations are injected below, on the service's clock
    runner, feeding = run_fed(svc)
    try:
        sub.wait_for(lambda m: m.topic.endswith("/status") and b'"online"' in m.payload, timeout=5)
        msg = sub.wait_for(lambda m: m.topic.endswith("/alert") and b'"level":"alert"' in m.payload, timeout=10)
        alert = json.loads(msg.payload)
        validate("alert", alert)
        ack_topic = "edge-emotion/site-a/kiosk-a/ack"
        assert svc.ack_topic == ack_topic
        sub.client.publish(ack_topic, b'{"alert_id": 42}', qos=1)  # malformed: logged, changes nothing
        sub.client.publish(ack_topic, json.dumps({"alert_id": alert["alert_id"], "by": "tablet"}), qos=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (svc.core.visits.current and svc.core.visits.current.acknowledged):
            time.sleep(0.05)
        feeding.clear()  # the customer leaves; the visit ends visit_end_s later
        end = sub.wait_for(lambda m: m.topic.endswith("/visit") and b'"phase":"end"' in m.payload, timeout=5)
        summary = json.loads(end.payload)["summary"]
        assert json.loads(end.payload)["visit_id"] == alert["visit_id"]
        assert summary["alert_raised"] and summary["acknowledged"]
        assert svc.errors["ack"] == 1 and runner.is_alive()
    finally:
        feeding.clear()
        svc.stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    for m in sub.messages:
        if not m.topic.endswith("/ack"):  # the inbound acks published above
            validate(m.topic.rsplit("/", 1)[1], json.loads(m.payload))
