"""Home Assistant MQTT discovery (issue 22): off by default; the device config validates against Home Assistant's
documented schema, its templates read our events, it is retained and re-sent when Home Assistant's birth arrives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
from conftest import sample_body
from jsonschema import Draft202012Validator

from edge import __version__
from edge.config import IdentityConfig, KioskConfig, parse_config
from edge.events import EventFactory, validate_inbound
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.transport.homeassistant import announcements, discovery_payload, discovery_topic
from edge.transport.mqtt import MqttPublisher

SCHEMA = json.loads((Path(__file__).parent / "ha_discovery.schema.json").read_text())


def _cfg(mosquitto: Any = None, **ha: Any) -> KioskConfig:
    mqtt = {"host": mosquitto.host, "port": mosquitto.port} if mosquitto else {"enabled": False}
    return parse_config({"identity": {"site_id": "hall-1", "kiosk_id": "k.7", "counter_name": "Counter 7"},
                         "mqtt": mqtt, "homeassistant": ha})


def _render(template: str, payload: dict[str, Any]) -> str:
    return jinja2.Environment(autoescape=False).from_string(template).render(value_json=payload)


def _ev(kind: str, **over: Any) -> dict[str, Any]:
    return EventFactory(IdentityConfig(site_id="hall-1", kiosk_id="k.7")).make(kind, **{**sample_body(kind), **over})


def test_off_by_default() -> None:
    cfg = _cfg()
    assert cfg.homeassistant.enabled is False and announcements(cfg, __version__) == []
    with pytest.raises(Exception, match="homeassistant.enabeld"):
        parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "homeassistant": {"enabeld": True}})


def test_discovery_validates_against_home_assistants_schema() -> None:
    cfg = _cfg(enabled=True)
    (old_topic, cleared), (topic, raw) = announcements(cfg, __version__)
    # the id of releases before the hash: its retained device is cleared (empty retained config), not left beside
    assert (old_topic, cleared) == ("homeassistant/device/edge-emotion_hall-1_k_7/config", "")
    payload = json.loads(raw)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(SCHEMA).iter_errors(payload)]
    assert errors == []
    assert topic == "homeassistant/device/edge-emotion_hall-1_k_7_e55233/config" == discovery_topic(cfg)
    comps = payload["components"]
    assert {c["platform"] for c in comps.values()} == {"sensor", "binary_sensor", "switch"}
    online = comps["edge-emotion_hall-1_k_7_e55233_online"]
    assert online["state_topic"] == "edge-emotion/hall-1/k.7/status" and "availability_topic" not in online
    assert all(c["availability_topic"] == online["state_topic"] for c in comps.values() if c is not online)
    # the schema itself refuses what Home Assistant refuses
    for broken in ({**payload, "extra": 1}, {**payload, "device": {"name": "x"}},
                   {**payload, "components": {"a": {"platform": "sensor", "state_topic": "t"}}},
                   {**payload, "components": {"a": {"platform": "switch", "unique_id": "u", "command_topic": "a/+"}}}):
        assert list(Draft202012Validator(SCHEMA).iter_errors(broken)), broken
    no_switch = discovery_payload(_cfg(enabled=True, pause_switch=False), __version__)
    assert "switch" not in {c["platform"] for c in no_switch["components"].values()}


def test_templates_read_the_kiosks_events() -> None:
    p = discovery_payload(_cfg(enabled=True), __version__)
    comps = {c["name"]: c for c in p["components"].values()}
    assert _render(comps["Escalation"]["availability_template"], _ev("status")) == "online"
    assert _render(comps["Escalation"]["availability_template"], _ev("status", state="offline")) == "offline"
    assert _render(comps["Online"]["value_template"], _ev("status")) == "ON"
    assert _render(comps["Online"]["value_template"], _ev("status", state="offline")) == "OFF"
    assert _render(comps["Escalation"]["value_template"], _ev("emotion")) == "0.7"
    assert _render(comps["Customer state"]["value_template"], _ev("emotion")) == "angry"
    alert = comps["Alert"]["value_template"]
    assert [_render(alert, _ev("alert", level=lv, reason=r)) for lv, r in
            (("watch", "rising"), ("alert", "sustained"), ("recovered", "recovered"))] == ["OFF", "ON", "OFF"]
    sw = comps["Pause analysis"]
    assert _render(sw["value_template"], _ev("status", paused=True)) == "ON"
    assert _render(sw["value_template"], _ev("status")) == "OFF"
    for key, action in (("payload_on", "pause"), ("payload_off", "resume")):
        validate_inbound("pause", json.loads(sw[key]))  # the kiosk accepts what the switch sends
        assert json.loads(sw[key])["action"] == action
    assert sw["command_topic"] == "edge-emotion/hall-1/k.7/pause" and sw["retain"] is False


def test_retained_and_resent_on_home_assistants_birth(mosquitto: Any, subscribe: Any) -> None:
    cfg = _cfg(mosquitto, enabled=True)
    pub = Service(cfg, Analyzers())._make_publisher()
    assert isinstance(pub, MqttPublisher) and pub.birth_topic == "homeassistant/status"
    pub.start()
    try:
        subscribe(mosquitto, "edge-emotion/+/+/status").wait_for(lambda m: b'"online"' in m.payload, timeout=10)
        ha = subscribe(mosquitto, "homeassistant/device/#")  # after it was published: the broker kept it
        first = ha.wait_for(lambda m: bool(m.payload), timeout=10)
        assert first.retain and json.loads(first.payload)["device"]["name"] == "Counter 7"
        ha.client.publish(first.topic, b"", qos=1, retain=True).wait_for_publish(5)  # Home Assistant lost it
        ha.messages.clear()
        ha.client.publish("homeassistant/status", b"offline", qos=1).wait_for_publish(5)
        ha.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)  # its birth message
        again = ha.wait_for(lambda m: m.topic == first.topic and bool(m.payload), timeout=10)
        assert json.loads(again.payload) == json.loads(first.payload)
        assert len([m for m in ha.messages if m.payload]) == 1  # `offline` re-sent nothing
    finally:
        pub.stop()


def test_disabled_publishes_and_subscribes_nothing_of_home_assistants(mosquitto: Any, subscribe: Any) -> None:
    pub = Service(_cfg(mosquitto), Analyzers())._make_publisher()
    assert isinstance(pub, MqttPublisher) and pub.birth_topic is None and pub.announce is None
    assert not any(s.startswith("homeassistant") for s in pub.subscriptions)
    pub.start()
    try:
        ha = subscribe(mosquitto, "homeassistant/#")
        ha.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        st = subscribe(mosquitto, "edge-emotion/+/+/status")
        st.wait_for(lambda m: b'"online"' in m.payload, timeout=10)
        assert [m.topic for m in ha.messages] == ["homeassistant/status"]
    finally:
        pub.stop()


def test_privacy_report_lists_the_retained_discovery_config() -> None:
    from edge.privacy.report import build_report, to_markdown

    assert "homeassistant/" not in to_markdown(build_report(_cfg(), None))
    md = to_markdown(build_report(_cfg(enabled=True), None))
    assert "`homeassistant/device/edge-emotion_hall-1_k_7_e55233/config`" in md
    assert "the Home Assistant discovery config" in md


def test_discovery_ids_never_collide() -> None:
    """Site/kiosk pairs that read alike once '.' and the separator are '_' get different device ids."""
    from edge.transport.homeassistant import object_id

    pairs = [("hall_1", "k2"), ("hall", "1_k2"), ("hall.1", "k2"), ("hall", "1.k2")]
    ids = {object_id(parse_config({"identity": {"site_id": s, "kiosk_id": k}})) for s, k in pairs}
    assert len(ids) == len(pairs)
    assert object_id(parse_config({"identity": {"site_id": "hall-1", "kiosk_id": "k7"}})) == "edge-emotion_hall-1_k7"


def test_a_plain_id_announces_once_and_clears_nothing() -> None:
    """Kiosks whose ids never had ``_`` or ``.`` keep their id: one retained config, no clearing message."""
    cfg = parse_config({"identity": {"site_id": "hall-1", "kiosk_id": "k7"}, "mqtt": {"enabled": False},
                        "homeassistant": {"enabled": True}})
    ((topic, raw),) = announcements(cfg, __version__)
    assert topic == "homeassistant/device/edge-emotion_hall-1_k7/config" and json.loads(raw)["components"]


def test_an_old_id_that_is_another_kiosks_current_id_is_not_cleared() -> None:
    """Kiosk ``hall/k_1_24f9b0``'s old id is kiosk ``hall/k_1``'s current, hashed id: clearing it would delete that
    kiosk's live device on every reconnect."""
    def cfg(kiosk: str) -> KioskConfig:
        return parse_config({"identity": {"site_id": "hall", "kiosk_id": kiosk}, "mqtt": {"enabled": False},
                             "homeassistant": {"enabled": True}})

    live = discovery_topic(cfg("k_1"))
    assert live == "homeassistant/device/edge-emotion_hall_k_1_24f9b0/config"
    topics = [t for t, _ in announcements(cfg("k_1_24f9b0"), __version__)]
    assert live not in topics and len(topics) == 1
