"""Care cues on the tablet (issue 21): quieter than alerts (tile only, one soft tone), in the tablet's language,
seen by a late tablet through the kiosk's retained `current`; an alert outranks them.

A real kiosk service (scripted face), a real mosquitto, the tablet server and headless Chromium.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Broker
from tablet_kit import Counter, browsers, js, severe  # noqa: F401 - fixture
from test_tablet_browser import tablet_url  # noqa: F401 - fixture

from edge.demo.scripted import blend, for_escalation
from edge.events import validate
from edge.policy.hints import HINTS

SITE, KIOSK = "hall-q", "k-care"
TILE = f'.tile[data-kiosk="{KIOSK}"]'
STATE = f"""const t = document.querySelector('{TILE}');
    return t ? {{state: t.dataset.state, cue: t.querySelector('.tile-cue').textContent,
                label: t.querySelector('.tile-state').textContent, cards: document.querySelectorAll('.card').length,
                beeps: document.body.dataset.beeps || '0', last: document.body.dataset.lastBeep || ''}} : null;"""


def test_care_cue_is_quiet_translated_and_seen_late(browsers: Any, mosquitto: Broker, subscribe: Any,  # noqa: F811
                                                    tablet_url: str, tmp_path: Path) -> None:  # noqa: F811
    c = Counter(browsers, mosquitto, subscribe, tablet_url, tmp_path / "media", SITE, KIOSK, "Counter Q")
    sub, url, first, dial, kiosk = c.sub, c.url, c.first, c.dial, c.kiosk
    try:
        js(first, f"return document.querySelector('{TILE}')?.dataset.state === 'calm'", 15)
        dial.probs = blend(0.7, "sad")
        msg = sub.wait_for(lambda m: m.topic.endswith("/cue"), 20)
        cue = json.loads(msg.payload)
        validate("cue", cue)
        assert cue["kind"] == "care" and cue["hint"]["key"] == "care"
        js(first, f"return document.querySelector('{TILE}').dataset.state === 'care'")
        got = first.execute_script(STATE)
        assert got == {"state": "care", "cue": HINTS["en"]["care"], "label": "Needs care", "cards": 0, "beeps": "1",
                       "last": "care"}, got
        assert not [m for m in sub.messages if m.topic.endswith("/alert")], "a care cue is not an alert"
        first.save_screenshot(str(tmp_path / "care.png"))  # kept by pytest's basetemp for a look

        late = browsers()  # zh-CN, while the kiosk speaks en: from the retained `current`, silently
        late.get(url + "&lang=zh-CN")
        js(late, f"return document.querySelector('{TILE}')?.dataset.state === 'care'", 15)
        got = late.execute_script(STATE)
        assert got["cue"] == HINTS["zh-CN"]["care"] and got["label"] == "需要关怀" and got["beeps"] == "0", got

        dial.probs = for_escalation(0.75)  # the customer gets upset: the alert outranks the cue
        js(first, f"return document.querySelector('{TILE}').dataset.state === 'alert'", 15)
        got = first.execute_script(STATE)
        assert got["cue"] == "" and got["cards"] == 1 and got["last"] == "alert", got
        for drv in (first, late):
            assert not severe(drv)
    finally:
        kiosk.stop()
