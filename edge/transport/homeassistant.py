"""Home Assistant MQTT discovery: one retained device-level config per kiosk (off by default; pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from edge.events import topic

if TYPE_CHECKING:
    from edge.config import KioskConfig

ALERT_OFF_DELAY_S = 600  # the alert sensor turns off by itself when a visit ends without `recovered`
EMOTION_EXPIRE_S = 30  # escalation/state become unavailable this long after the last emotion event


def object_id(cfg: KioskConfig) -> str:
    """The device's discovery id: letters, digits, ``_`` and ``-`` only, one per site/kiosk pair. Ids with ``_`` or
    ``.`` get a short hash of ``SITE/KIOSK`` appended: ``hall_1``/``k2`` and ``hall``/``1_k2`` (or ``hall.1``/``k2``)
    would otherwise share one id and overwrite each other's retained device in Home Assistant."""
    site, kiosk = cfg.identity.site_id, cfg.identity.kiosk_id
    base = legacy_object_id(cfg)
    if not re.search(r"[_.]", site + kiosk):
        return base  # the "_" between the parts is then unambiguous
    return f"{base}_{hashlib.sha256(f'{site}/{kiosk}'.encode()).hexdigest()[:6]}"


def legacy_object_id(cfg: KioskConfig) -> str:
    """The id releases before 2026-12-04 used for every kiosk (ambiguous for ids with ``_`` or ``.``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"edge-emotion_{cfg.identity.site_id}_{cfg.identity.kiosk_id}")


def discovery_topic(cfg: KioskConfig) -> str:
    """Where the device config is published (retained)."""
    return f"{cfg.homeassistant.discovery_prefix}/device/{object_id(cfg)}/config"


def discovery_payload(cfg: KioskConfig, version: str) -> dict[str, Any]:
    """The device-level discovery config: Online (`status`), escalation/state sensors, alert, pause switch."""
    ident, oid = cfg.identity, object_id(cfg)
    t = lambda kind: topic(cfg.mqtt.topic_prefix, ident.site_id, ident.kiosk_id, kind)  # noqa: E731
    name = ident.counter_name or f"{ident.site_id}/{ident.kiosk_id}"
    avail = {"availability_topic": t("status"), "availability_template": "{{ value_json.state }}",
             "payload_available": "online", "payload_not_available": "offline"}
    components: dict[str, dict[str, Any]] = {
        f"{oid}_online": {"platform": "binary_sensor", "unique_id": f"{oid}_online", "name": "Online",
                          "state_topic": t("status"), "device_class": "connectivity",
                          "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}"},
        f"{oid}_escalation": {"platform": "sensor", "unique_id": f"{oid}_escalation", "name": "Escalation",
                              "state_topic": t("emotion"), "value_template": "{{ value_json.escalation }}",
                              "state_class": "measurement", "icon": "mdi:gauge", "expire_after": EMOTION_EXPIRE_S},
        f"{oid}_state": {"platform": "sensor", "unique_id": f"{oid}_state", "name": "Customer state",
                         "state_topic": t("emotion"), "value_template": "{{ value_json.label }}",
                         "icon": "mdi:emoticon-outline", "expire_after": EMOTION_EXPIRE_S},
        f"{oid}_alert": {"platform": "binary_sensor", "unique_id": f"{oid}_alert", "name": "Alert",
                         "state_topic": t("alert"), "device_class": "problem", "off_delay": ALERT_OFF_DELAY_S,
                         "value_template": "{{ 'ON' if value_json.level == 'alert' else 'OFF' }}"},
    }
    if cfg.homeassistant.pause_switch:
        components[f"{oid}_pause"] = {
            "platform": "switch", "unique_id": f"{oid}_pause", "name": "Pause analysis", "icon": "mdi:pause-circle",
            "command_topic": t("pause"), "retain": False,  # the kiosk refuses retained commands
            "payload_on": json.dumps({"action": "pause", "by": "home-assistant"}),
            "payload_off": json.dumps({"action": "resume", "by": "home-assistant"}),
            "state_topic": t("status"), "value_template": "{{ 'ON' if value_json.paused else 'OFF' }}",
            "state_on": "ON", "state_off": "OFF"}
    for key, comp in components.items():  # every entity but Online is unavailable while the kiosk is offline
        if key != f"{oid}_online":
            comp.update(avail)
    return {
        "device": {"identifiers": [oid], "name": name, "manufacturer": "edge-emotion", "model": "emotion kiosk",
                   "sw_version": version},
        "origin": {"name": "edge-emotion", "sw_version": version}, "qos": 1,
        "components": components,
    }


def announcements(cfg: KioskConfig, version: str) -> list[tuple[str, str]]:
    """(topic, payload) of the retained discovery messages; none when disabled."""
    if not cfg.homeassistant.enabled:
        return []
    out = [(discovery_topic(cfg), json.dumps(discovery_payload(cfg, version), separators=(",", ":")))]
    old = legacy_object_id(cfg)
    if object_id(cfg) != old and not re.search(r"_[0-9a-f]{6}$", old):
        # an empty retained config removes the device an earlier release announced under the old id, or Home
        # Assistant keeps it beside the new one (a second pause switch). Every id that could share the old one
        # carries ``_`` or ``.`` and moved to a hashed id too, except one that itself ends like a hash (``k_1``
        # hashed is ``..._k_1_24f9b0``, also the old id of kiosk ``k_1_24f9b0``): such an old id is left alone
        out.insert(0, (f"{cfg.homeassistant.discovery_prefix}/device/{old}/config", ""))
    return out
