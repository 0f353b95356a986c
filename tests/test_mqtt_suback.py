"""A command subscription the broker refuses in its SUBACK shows in the retained status and the log: staff
acknowledgements, pauses and remote config would otherwise never arrive with nothing saying so. (Mosquitto 2.0 grants
every subscription and applies its ACL on delivery, so the SUBACK is played here as a refusing broker sends it.)"""

from __future__ import annotations

import logging

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import IdentityConfig, MqttConfig
from edge.events import EventFactory, topic
from edge.transport.mqtt import MqttPublisher


def test_a_refused_command_subscription_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    ident = IdentityConfig(site_id="s", kiosk_id="k")
    subs = [topic("edge-emotion", "s", "k", kind) for kind in ("ack", "pause")]
    pub = MqttPublisher(MqttConfig(host="127.0.0.1"), ident, EventFactory(ident), lambda: {}, subscriptions=subs)
    pub._sub_mid = 7
    granted, refused = ReasonCode(PacketTypes.SUBACK, identifier=1), ReasonCode(PacketTypes.SUBACK, identifier=0x87)
    caplog.set_level(logging.ERROR, logger="edge.transport.mqtt")
    pub._on_subscribe(None, None, 6, [refused, refused], None)  # an older subscribe's answer: ignored
    assert pub.subscription_problem() is None
    pub._on_subscribe(None, None, 7, [granted, refused], None)
    problem = pub.subscription_problem()
    assert problem is not None and "edge-emotion/s/k/pause (Not authorized)" in problem and "/ack" not in problem
    assert sum("refused the subscription" in r.getMessage() for r in caplog.records) == 1
    pub._on_subscribe(None, None, 7, [granted, refused], None)  # the same answer after a reconnect: no new line
    assert sum("refused the subscription" in r.getMessage() for r in caplog.records) == 1
    pub._on_subscribe(None, None, 7, [granted, granted], None)
    assert pub.subscription_problem() is None


def test_the_status_names_a_refused_subscription() -> None:
    from types import SimpleNamespace

    from edge.config import parse_config
    from edge.pipeline.status import status_body
    from edge.privacy.pause import PauseGate

    class Pub:
        def outbox_problem(self) -> None:
            return None

        def subscription_problem(self) -> str:
            return "broker refused the subscription to edge-emotion/s/k/pause (Not authorized)"

    import threading

    svc = SimpleNamespace(cfg=parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}}), video=None, audio=None,
                          paused=PauseGate(300), closed=threading.Event(), publisher=Pub(),
                          an=SimpleNamespace(versions={}), stop=threading.Event(),
                          watchdog=SimpleNamespace(stuck_workers=lambda: []))
    body = status_body(svc)  # type: ignore[arg-type]
    assert any(d.startswith("mqtt: broker refused the subscription") for d in body["degraded"])
