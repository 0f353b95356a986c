"""Connection truth per tile (issue 21): broker down -> every tile "unknown since", a kiosk's offline or silent health
-> that tile says so, an unconfigured page says what to configure. Real mosquitto, real kiosk, headless Chromium."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from conftest import Broker, sample_body
from paho.mqtt.enums import CallbackAPIVersion
from tablet_kit import Dial, RunningKiosk, browsers, js, kiosk_config, severe  # noqa: F401 - fixture
from test_tablet_browser import tablet_url  # noqa: F401 - fixture

from edge.config import IdentityConfig
from edge.events import EventFactory, topic

SITE = "hall-c"


def _tiles(drv: Any) -> dict[str, dict[str, str]]:
    return drv.execute_script("""const out = {};
        document.querySelectorAll('.tile').forEach(t => { out[t.dataset.kiosk] = {online: t.dataset.online,
            state: t.dataset.state, presence: t.querySelector('.presence').textContent,
            note: t.querySelector('.tile-note').textContent}; });
        return out;""")


def _retained_status(broker: Broker, kiosk: str, state: str) -> None:
    f = EventFactory(IdentityConfig(site_id=SITE, kiosk_id=kiosk, counter_name=f"Counter {kiosk}"))
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    c.connect(broker.host, broker.port)
    c.loop_start()
    payload = f.make("status", **{**sample_body("status"), "state": state, "counter_name": f"Counter {kiosk}"})
    c.publish(topic("edge-emotion", SITE, kiosk, "status"), json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def test_broker_down_and_up_per_tile(browsers: Any, mosquitto: Broker, tablet_url: str,  # noqa: F811
                                     tmp_path: Path) -> None:
    _retained_status(mosquitto, "k-silent", "online")  # a kiosk that died while the broker was down: no health
    _retained_status(mosquitto, "k-off", "offline")
    kiosk = RunningKiosk(kiosk_config(tmp_path / "media", mosquitto, SITE, "k-live", "Counter live"), Dial())
    drv = browsers()
    try:
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en&health=3")
        js(drv, "return document.querySelector('.tile[data-kiosk=\"k-live\"]')?.dataset.state === 'calm'", 15)
        tiles = js(drv, "return document.querySelector('.tile[data-kiosk=\"k-silent\"][data-online=\"stale\"]')"
                        " && document.querySelectorAll('.tile').length === 3", 10) and _tiles(drv)
        assert tiles["k-silent"]["presence"].startswith("No signal since "), tiles
        assert tiles["k-off"]["online"] == "offline" and tiles["k-off"]["presence"] == "Offline", tiles
        assert tiles["k-live"]["online"] == "online" and tiles["k-live"]["presence"] == "Online", tiles

        down = time.strftime("%H:%M")
        mosquitto.stop()
        js(drv, "return document.getElementById('conn').dataset.state !== 'online'")
        tiles = _tiles(drv)
        for k, t in tiles.items():
            assert t["online"] == "unknown" and t["state"] == "unknown", (k, t)
            assert t["presence"].startswith("Unknown since ") and "Online" not in t["presence"], (k, t)
            assert t["presence"][len("Unknown since "):] in (down, time.strftime("%H:%M")), t
            assert "lost the broker" in t["note"], t

        mosquitto.start()  # without persistence: the retained messages of the dead kiosks are gone
        js(drv, "return document.getElementById('conn').dataset.state === 'online'", 15)
        js(drv, "return document.querySelector('.tile[data-kiosk=\"k-live\"]').dataset.online === 'online'", 15)
        tiles = _tiles(drv)
        assert tiles["k-live"]["presence"] == "Online" and tiles["k-live"]["state"] == "calm", tiles
        for k in ("k-silent", "k-off"):  # nothing vouches for them any more
            assert tiles[k]["online"] == "unknown" and tiles[k]["presence"].startswith("Unknown since "), tiles
            assert "no status" in tiles[k]["note"], tiles

        kiosk.stop()  # a clean exit: its own `offline`
        js(drv, "return document.querySelector('.tile[data-kiosk=\"k-live\"]').dataset.online === 'offline'")
        assert not severe(drv)
    finally:
        if kiosk.thread.is_alive():
            kiosk.stop()


def test_unconfigured_page_says_what_to_configure(browsers: Any, tablet_url: str) -> None:  # noqa: F811
    drv = browsers()
    drv.get(f"{tablet_url}/?lang=en")
    js(drv, "return !document.getElementById('setup').hidden")
    text = drv.execute_script("return [document.getElementById('conn-text').textContent, "
                              "document.getElementById('setup-missing').textContent, "
                              "document.getElementById('setup-example').textContent]")
    assert text[0] == "Not configured" and "site id" in text[1] and "site=SITE" in text[2], text
    assert "unreachable" not in drv.execute_script("return document.body.innerText")
    drv.get(f"{tablet_url}/?lang=zh-CN&site=ok&prefix=a/%2B")
    js(drv, "return !document.getElementById('setup').hidden")
    assert "主题前缀" in drv.execute_script("return document.getElementById('setup-missing').textContent")
