"""The tablet tells the truth (issue 21): the kiosk's level on tile, card and sound; a late tablet sees the present;
an ack on one tablet clears the card on every tablet; hints in the tablet's language. A real kiosk service (scripted
face, real fusion and alert policy), a real mosquitto, the real tablet server and headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Broker
from tablet_kit import Counter, browsers, js, screenshot, severe  # noqa: F401 - fixture
from test_tablet_browser import tablet_url  # noqa: F401 - fixture

from edge.demo.scripted import blend, for_escalation
from edge.events import validate
from edge.policy.config import AlertsConfig
from edge.policy.fusion import escalation_score
from edge.policy.hints import HINTS

SITE, KIOSK = "hall-t", "k-truth"
TILE = f'.tile[data-kiosk="{KIOSK}"]'


def _card(drv: Any) -> dict[str, Any]:
    return drv.execute_script("""const c = document.querySelector('.card');
        return c ? {id: c.dataset.alertId, level: c.dataset.level, ack: c.dataset.ack || '',
                    hint: c.querySelector('.hint').textContent, lang: c.querySelector('.hint').lang,
                    n: document.querySelectorAll('.card').length} : null;""") or {}


def _tile(drv: Any) -> dict[str, Any]:
    return drv.execute_script(f"""const t = document.querySelector('{TILE}');
        return t ? {{state: t.dataset.state, alerting: t.dataset.alerting, online: t.dataset.online,
                    label: t.querySelector('.tile-state').textContent}} : null;""") or {}


def test_tile_card_and_sound_follow_the_kiosk_and_late_tablets_see_the_present(
        browsers: Any, mosquitto: Broker, subscribe: Any, tablet_url: str, tmp_path: Path) -> None:  # noqa: F811
    alerts = AlertsConfig()
    # Between the kiosk's alert threshold and the 0.7 an older tablet used for its own dot: the disagreement case.
    target = (alerts.alert_threshold + 0.7) / 2
    angry = for_escalation(target)
    assert alerts.alert_threshold < escalation_score(angry) < 0.7
    c = Counter(browsers, mosquitto, subscribe, tablet_url, tmp_path / "media", SITE, KIOSK, "Counter T")
    sub, url, first, dial, kiosk = c.sub, c.url, c.first, c.dial, c.kiosk
    try:
        js(first, f"return document.querySelector('{TILE}')?.dataset.state === 'calm'", 15)
        dial.probs = angry
        msg = sub.wait_for(lambda m: m.topic.endswith("/alert") and b'"level":"alert"' in m.payload, 20)
        alert = json.loads(msg.payload)
        aid, key = alert["alert_id"], alert["hint"]["key"]
        assert alert["hint"]["lang"] == "en" and alert["hint"]["text"] == HINTS["en"][key]
        # (1) one source of truth: tile, card and sound all say the kiosk's level
        js(first, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]')?.dataset.level === 'alert'")
        assert _tile(first)["state"] == "alert" and _tile(first)["alerting"] == "alert", _tile(first)
        assert _tile(first)["label"] == "Alert"
        assert first.execute_script("return document.body.dataset.lastBeep") == "alert"
        assert _card(first)["hint"] == HINTS["en"][key]

        # (2) the retained present state: a schema-valid `current` with the open episode
        cur = sub.wait_for(lambda m: m.topic.endswith("/current") and aid.encode() in m.payload
                           and b'"level":"alert"' in m.payload)
        body = json.loads(cur.payload)
        validate("current", body)
        assert body["episode"]["acknowledged"] is False and body["visit_id"] == alert["visit_id"]
        # a tablet that connects late (zh-CN, while the kiosk speaks en) shows the alert, in its own language
        late = browsers()
        late.get(url + "&lang=zh-CN")
        js(late, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]')?.dataset.level === 'alert'")
        card = _card(late)
        assert card["hint"] == HINTS["zh-CN"][key] and card["lang"] == "zh-CN", card
        assert _tile(late)["state"] == "alert" and _tile(late)["label"] == "警示", _tile(late)
        assert late.execute_script("return document.body.dataset.lastBeep") == "alert"
        js(late, "return !document.querySelector('.card.fresh')")  # the highlight is over
        screenshot(late, "tablet-zh-CN-800x1280.png", (800, 1280))

        # an ack on the late tablet clears the card on the first tablet (through the kiosk's `current`)
        late.find_element("css selector", f'.card[data-alert-id="{aid}"] .ack').click()
        js(first, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]').dataset.ack === 'done'")
        assert _tile(first)["alerting"] == "" and _tile(first)["state"] == "alert"
        assert kiosk.svc.core.visits.current is not None and kiosk.svc.core.visits.current.acknowledged
        sub.wait_for(lambda m: m.topic.endswith("/current") and b'"acknowledged":true' in m.payload)
        screenshot(first, "tablet-1024x768.png", (1024, 768))

        # recovery: the kiosk closes the episode, the retained state says none is open
        dial.probs = blend(0.02)
        js(first, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]').dataset.level === 'recovered'",
           25)
        js(late, f"return document.querySelector('.card[data-alert-id=\"{aid}\"]').dataset.level === 'recovered'")
        js(first, f"return document.querySelector('{TILE}').dataset.state === 'calm'")
        fresh = subscribe(mosquitto, f"edge-emotion/{SITE}/{KIOSK}/current")
        kept = fresh.wait_for(lambda m: m.retain)
        state = json.loads(kept.payload)
        validate("current", state)
        assert state["episode"] is None and state["visit_id"] is not None, state
        # a third tablet after the recovery shows no stale alert
        third = browsers()
        third.get(url + "&lang=en")
        js(third, f"return document.querySelector('{TILE}')?.dataset.state === 'calm'", 15)
        assert _card(third) == {} and third.execute_script("return document.body.dataset.beeps || '0'") == "0"
        for drv in (first, late, third):
            assert not severe(drv)
    finally:
        kiosk.stop()
    # a clean exit leaves no episode and no visit in the retained state
    last = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/current")][-1]
    assert last["episode"] is None and last["visit_id"] is None


def test_tablet_hint_tables_are_the_kiosks(browsers: Any, tablet_url: str) -> None:  # noqa: F811
    """The tablet's hint tables equal edge/policy/hints.py; a site override is shown as written only in its language."""
    drv = browsers()
    drv.get(f"{tablet_url}/?site=x&lang=zh-CN&broker=ws://127.0.0.1:9")
    assert drv.execute_script("return window.TABLET_HINTS") == HINTS
    assert set(HINTS["en"]) == set(HINTS["zh-CN"])
    got = drv.execute_script("""const h = window.TabletApp.hintText;
        return [h({lang: 'en', text: 'Site text', key: 'watch', custom: true}),
                h({lang: 'zh-CN', text: '本网点', key: 'watch', custom: true}),
                h({lang: 'en', text: 'Old kiosk', key: 'nope'}), h({lang: 'en', text: 'x', key: 'care'})];""")
    assert got == [HINTS["zh-CN"]["watch"], "本网点", "Old kiosk", HINTS["zh-CN"]["care"]]
