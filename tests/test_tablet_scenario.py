"""What a person watches: a replayed scenario through the real kiosk service and int8 models, the alert with its
hint on the tablet in Chromium, Acknowledge back to the kiosk, then the counter recovers (issue #5, done-when)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from test_tablet_browser import _card, _tile, _viewport, _wait_js, browser, tablet_url  # noqa: F401 - fixtures

from edge.config import parse_config
from edge.demo.scenario import DATA_DIR, build_scenario
from edge.events import validate

SITE, KIOSK = "hall-9", "k-live"
VOICE = DATA_DIR / "speech" / "crema-d" / "1002_DFA_ANG_XX.flac"
FACE = DATA_DIR / "av" / "crema-d" / "1001_DFA_NEU_XX.mp4"
needs_data = pytest.mark.skipif(not (VOICE.is_file() and FACE.is_file()),
                                reason=f"CREMA-D clips not found in {DATA_DIR} (../shared/data is absent)")


@needs_data
def test_replayed_scenario_alert_ack_and_recovery_on_the_tablet(browser: Any, mosquitto: Broker,  # noqa: F811
                                                               tablet_url: str, subscribe: Any,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """Default settings but the 0.1 voice CNN, real time: actor 1001's calm face over actor 1002's neutral → angry →
    neutral voice."""
    from edge.pipeline.analyzers import build_analyzers
    from edge.pipeline.service import Service

    drv = browser
    sc = build_scenario("NEU*3,ANG*6,NEU*8", tmp_path / "sc", voice="1002", face="NEU")
    cfg = parse_config({
        "identity": {"site_id": SITE, "kiosk_id": KIOSK, "counter_name": "Counter 9"},
        "camera": {"source": str(sc.video)}, "microphone": {"source": str(sc.audio)},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        # the lighter voice model: with voice 0.2.0-0.2.1 actor 1002's neutral tail stayed near the release threshold
        # and the episode did not recover; this test is about the tablet's flow, not the voice model
        "models": {"voice_model": "voice_emotion_cnn"},
    })
    sub = subscribe(mosquitto, f"edge-emotion/{SITE}/{KIOSK}/#")
    _viewport(drv, 1280, 800)
    drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
    _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
    svc = Service(cfg, build_analyzers(cfg))
    runner = threading.Thread(target=svc.run, daemon=True)
    t0 = time.monotonic()
    runner.start()
    try:
        tile = f'.tile[data-kiosk="{KIOSK}"]'
        _wait_js(drv, f"return document.querySelector('{tile}[data-online=\"online\"]')", 15)
        msg = sub.wait_for(lambda m: m.topic.endswith("/alert") and b'"level":"alert"' in m.payload,
                           timeout=sc.duration_s + 10)
        alert = json.loads(msg.payload)
        validate("alert", alert)
        anger = sc.first_start(["ANG"])
        assert anger is not None and time.monotonic() - t0 > anger, "an alert before the anger started"
        aid = alert["alert_id"]
        _wait_js(drv, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]')?.dataset.level === 'alert'")
        card = _card(drv, aid)
        assert alert["hint"]["text"] in card["text"] and "Counter 9" in card["text"], card
        assert card["button"] == "Acknowledge" and _tile(drv, KIOSK)["alerting"] == "alert"

        drv.find_element("css selector", f'.card[data-alert-id="{aid}"] .ack').click()
        _wait_js(drv, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]').dataset.ack === 'done'")
        deadline = time.monotonic() + 5
        while not (svc.core.visits.current and svc.core.visits.current.acknowledged):
            assert time.monotonic() < deadline, "the kiosk did not record the tablet's ack"
            time.sleep(0.05)

        _wait_js(drv, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]').dataset.level "
                      "=== 'recovered'", sc.duration_s)
        assert "Recovered" in _card(drv, aid)["text"]
        _wait_js(drv, f"return document.querySelector('{tile}').dataset.state === 'calm'", 10)
        # the media end, the customer "leaves": the visit's anonymous summary says what happened
        end = sub.wait_for(lambda m: m.topic.endswith("/visit") and b'"phase":"end"' in m.payload,
                           timeout=sc.duration_s + cfg.fusion.visit_end_s + 10)
        summary = json.loads(end.payload)["summary"]
        assert json.loads(end.payload)["visit_id"] == alert["visit_id"]
        assert summary["alert_raised"] and summary["acknowledged"] and summary["calmed_down"], summary
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        svc.stop.set()
        runner.join(timeout=15)
    assert not runner.is_alive()
