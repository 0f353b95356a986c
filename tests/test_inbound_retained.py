"""Inbound commands with the retain flag are refused, live and after a restart (issue 20, item 3).

The service process and a real mosquitto: a retained `config` that switches alerts off and a retained `pause` /
`resume` change nothing, are counted in ``health.drops.inbound_retained`` and logged once per topic; the same
retained messages delivered again when the kiosk restarts and subscribes are refused too. The site broker's side
(what mosquitto can and cannot deny) is in tests/test_deploy.py and deploy/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import Kiosk, until, write_toml

from edge.demo.media import make_demo

SITE, KIOSK = "site-r3", "kiosk-r3"
BASE = f"edge-emotion/{SITE}/{KIOSK}"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo(tmp_path_factory.mktemp("media"), seconds=6.0)


def _last(sub: Any, kind: str, since: int = 0) -> dict[str, Any] | None:
    found = [json.loads(m.payload) for m in sub.messages[since:] if m.topic == f"{BASE}/{kind}"]
    return found[-1] if found else None


def _health_since(sub: Any, mark: int, pred: Any) -> bool:
    return any(pred(json.loads(m.payload)) for m in sub.messages[mark:] if m.topic == f"{BASE}/health")


def test_retained_commands_are_refused_live_and_after_a_restart(mosquitto: Broker, subscribe: Any,
                                                              media: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": str(media[0]), "loop": True},
        "microphone": {"source": str(media[1]), "loop": True},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0},
        "state": {"dir": str(tmp_path / "state")}})
    sub = subscribe(mosquitto, f"{BASE}/#")
    tablet = sub.client
    kiosk = Kiosk(cfg, tmp_path / "kiosk1.log")
    try:
        sub.wait_for(lambda m: m.topic == f"{BASE}/health", timeout=60)
        tablet.publish(f"{BASE}/config", b'{"alerts": {"enabled": false}}', qos=1, retain=True)
        tablet.publish(f"{BASE}/pause", b'{"action": "pause", "by": "tablet"}', qos=1, retain=True)
        mark = len(sub.messages)
        until(lambda: _health_since(sub, mark, lambda h: h["drops"].get("inbound_retained") == 2), 10,
              "both retained commands counted")
        status, state = _last(sub, "status"), _last(sub, "configstate")
        assert status is not None and status["paused"] is False, status
        assert state is not None and state["trigger"] == "startup" and state["config"]["alerts"]["enabled"]
        tablet.publish(f"{BASE}/pause", b'{"action": "pause", "by": "tablet"}', qos=1)  # not retained: applied
        sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"paused":true' in m.payload, timeout=10)
        tablet.publish(f"{BASE}/pause", b'{"action": "resume"}', qos=1, retain=True)  # the field report's resume
        mark = len(sub.messages)
        until(lambda: _health_since(sub, mark, lambda h: h["drops"].get("inbound_retained") == 3), 10,
              "the retained resume counted")
        assert _last(sub, "status")["paused"] is True  # type: ignore[index]  # the customer's pause holds
        tablet.publish(f"{BASE}/pause", b'{"action": "resume"}', qos=1)  # staff resume (a pause survives restarts)
        sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"paused":false' in m.payload, timeout=10)
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
    log1 = kiosk.text()
    assert log1.count("refused retained message on") == 2, log1[-3000:]  # once per topic, not per message
    mark = len(sub.messages)
    kiosk = Kiosk(cfg, tmp_path / "kiosk2.log")  # subscribes again: the broker delivers both retained commands
    try:
        until(lambda: _health_since(sub, mark, lambda h: h["drops"].get("inbound_retained") == 2), 60,
              "the retained commands refused after the restart")
        status, state = _last(sub, "status", mark), _last(sub, "configstate", mark)
        assert status is not None and status["state"] == "online" and status["paused"] is False
        assert state is not None and state["config"]["alerts"]["enabled"] and state["overlay"] == {}
        assert _last(sub, "configstate", mark)["trigger"] == "startup"  # type: ignore[index]
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
    assert not (tmp_path / "state" / "remote-config.json").exists()
