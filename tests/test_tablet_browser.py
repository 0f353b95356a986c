"""Staff tablet end to end: a real mosquitto (websockets), the real `edge-emotion tablet` server, Debian's Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from conftest import Broker, free_port, sample_body, wait_port
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion
from screenshots import shot_path

from edge.config import IdentityConfig
from edge.events import EventFactory, topic
from edge.tablet import STATIC_DIR, make_server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
VENDOR = STATIC_DIR / "vendor" / "mqtt.min.js"
SCREENSHOT = shot_path("tablet.png")
SITE, PREFIX = "hall-1", "edge-emotion"
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1280,800", "--force-device-scale-factor=1", "--lang=en-US",
                "--autoplay-policy=no-user-gesture-required"]
# Where the alerts panel sits relative to the counters panel.
LAYOUT = """const a = document.querySelector('.alerts-panel').getBoundingClientRect();
    const c = document.querySelector('.counters-panel').getBoundingClientRect();
    return a.left >= c.right ? 'columns' : a.top >= c.bottom ? 'stacked' : 'overlap';"""


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), b""


def test_tablet_server_serves_only_the_app() -> None:
    """Right content types for the app's files; no listings, no Python sources, no way out of the folder."""
    server = make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, ctype, body = _get(base + "/?site=x")
        assert (status, ctype) == (200, "text/html; charset=utf-8") and b"app.js" in body
        assert _get(base + "/app.js")[:2] == (200, "text/javascript; charset=utf-8")
        assert _get(base + "/i18n.js")[:2] == (200, "text/javascript; charset=utf-8")
        assert _get(base + "/style.css")[:2] == (200, "text/css; charset=utf-8")
        for path in ("/vendor/", "/__init__.py", "/server.py", "/../cli.py", "/%2e%2e/cli.py", "/nope.js",
                     "/__pycache__/"):
            assert _get(base + path)[0] == 404, path
        assert _get(base + "/vendor")[0] == 404  # redirected to /vendor/ (urllib follows): still no listing
    finally:
        server.shutdown()
        server.server_close()


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[test])"
    for exe, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(exe, os.X_OK):
            return f"{exe} is missing (apt-get install {pkg}; scripts/setup does)"
    if not VENDOR.is_file():
        return f"{VENDOR.relative_to(STATIC_DIR.parents[1])} is missing (run scripts/vendor-tablet; needs npm)"
    return None


@pytest.fixture
def tablet_url() -> Iterator[str]:
    """The real `edge-emotion tablet` server in a subprocess on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "tablet", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=STATIC_DIR.parents[1])
    try:
        assert wait_port("127.0.0.1", port, timeout=15), "edge-emotion tablet did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's chromedriver (no Selenium Manager, no downloads)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def _wait_js(drv: Any, script: str, timeout: float = 5.0) -> Any:
    """Poll a JS expression (``return ...``) until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {script}")
        time.sleep(0.01)


def _viewport(drv: Any, width: int, height: int) -> None:
    """An exact CSS viewport (a 10-inch tablet: 1280x800 landscape, 800x1280 portrait)."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def _tile(drv: Any, kiosk: str) -> dict[str, str]:
    return drv.execute_script("""const t = document.querySelector(`.tile[data-kiosk="${arguments[0]}"]`);
        return t ? {online: t.dataset.online, state: t.dataset.state, alerting: t.dataset.alerting,
                    name: t.querySelector('.tile-name').textContent, presence: t.querySelector('.presence').textContent,
                    note: t.querySelector('.tile-note').textContent} : null;""", kiosk) or {}


def _card(drv: Any, alert_id: str) -> dict[str, str]:
    return drv.execute_script("""const c = document.querySelector(`.card[data-alert-id="${arguments[0]}"]`);
        return c ? {level: c.dataset.level, ack: c.dataset.ack || '', shown: c.dataset.shownAt || '',
                    text: c.innerText, button: c.querySelector('.ack').textContent,
                    count: document.querySelectorAll(`.card[data-alert-id="${arguments[0]}"]`).length} : null;""",
                              alert_id) or {}


def _counter(drv: Any, name: str) -> int:
    return int(drv.execute_script(f"return document.body.dataset.{name} || '0'"))


def _factory(kiosk: str, counter: str) -> EventFactory:
    return EventFactory(IdentityConfig(site_id=SITE, kiosk_id=kiosk, counter_name=counter))


def _body(kind: str, **changes: Any) -> dict[str, Any]:
    return {**sample_body(kind), **changes}


def _alert(f: EventFactory, alert_id: str, level: str, reason: str, text: str, esc: float = 0.8) -> dict[str, Any]:
    ev = {"escalation": esc, "duration_s": 6.0, "modalities": ["face", "voice"]}
    return f.make("alert", **_body("alert", alert_id=alert_id, level=level, reason=reason, evidence=ev,
                                   hint={"lang": "en", "text": text}, counter_name=f.identity.counter_name))


def _publisher(broker: Broker) -> tuple[paho.Client, Callable[..., None]]:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()

    def pub(kiosk: str, kind: str, payload: Any, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        client.publish(topic(PREFIX, SITE, kiosk, kind), data, qos=1, retain=retain).wait_for_publish(5)

    return client, pub


def test_tablet_end_to_end(browser: Any, mosquitto: Broker, subscribe: Callable[..., Any], tablet_url: str) -> None:
    """Status -> tile, alert -> card (latency), ack -> broker, last will -> offline tile, screenshot."""
    drv = browser
    k7, k8, k9 = _factory("k7", "Counter 3"), _factory("k8", "Counter 4"), _factory("k9", "Counter 5")
    acks = subscribe(mosquitto, f"{PREFIX}/{SITE}/+/ack")
    client, pub = _publisher(mosquitto)
    # Kiosk k7 is a real client with a last will; like transport/mqtt.py, the will is made at connect, before `online`.
    status_topic = topic(PREFIX, SITE, "k7", "status")
    will = k7.make("status", **_body("status", state="offline"))
    time.sleep(0.01)
    kiosk = subprocess.Popen(["mosquitto_pub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-i", "kiosk-k7",
                              "-t", status_topic, "-q", "1", "-r", "-l", "--will-topic", status_topic,
                              "--will-payload", json.dumps(will), "--will-qos", "1", "--will-retain"],
                             stdin=subprocess.PIPE, text=True)
    try:
        assert kiosk.stdin is not None
        kiosk.stdin.write(json.dumps(k7.make("status", **_body("status", ack_levels=True))) + "\n")
        kiosk.stdin.flush()
        pub("k8", "status", k8.make("status", **_body("status", counter_name="Counter 4")), retain=True)
        pub("k9", "status", k9.make("status", **_body("status", counter_name="Counter 5")), retain=True)
        k10 = _factory("k10", "Counter 6")
        pub("k10", "status", k10.make("status", **_body("status", counter_name="Counter 6", state="offline")),
            retain=True)

        _viewport(drv, 1280, 800)
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
        _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
        # (a) the retained online status -> tile online, with the counter's name
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k7\"][data-online=\"online\"]')")
        t = _tile(drv, "k7")
        assert (t["name"], t["presence"], t["state"]) == ("Counter 3", "Online", "idle"), t
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k10\"][data-online=\"offline\"]')")
        names = drv.execute_script("return [...document.querySelectorAll('.tile-name')].map(e => e.textContent)")
        assert names == ["Counter 3", "Counter 4", "Counter 5", "Counter 6"], names

        # malformed and foreign messages are counted and ignored; the page keeps working
        bad_schema = {**_alert(k7, "x-1", "alert", "sustained", "x"), "schema": "edge-emotion/alert/9"}
        bad_esc = {**k7.make("emotion", **_body("emotion")), "escalation": "high"}
        for kind, payload in (("alert", b"{not json"), ("alert", bad_schema), ("emotion", b"[1, 2]"),
                              ("emotion", bad_esc), ("alert", b"\xff\xfe")):
            pub("k7", kind, payload)
        _wait_js(drv, "return document.body.dataset.ignored === '5'")
        assert not _card(drv, "x-1")

        # live readings fill the meter, but only the kiosk decides a level: a high escalation alone is not a watch
        pub("k7", "emotion", k7.make("emotion", **_body("emotion", escalation=0.55)))
        pub("k8", "emotion", k8.make("emotion", **_body("emotion", escalation=0.1, label="neutral")))
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k7\"]').dataset.state === 'calm'")
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k8\"]').dataset.state === 'calm'")

        # an earlier episode at counter 4: watch, then recovered -> the card is marked recovered
        pub("k8", "alert", _alert(k8, "a-41", "watch", "rising", "Listen without interrupting; let them finish.", 0.5))
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-41\"]')")
        pub("k8", "alert", _alert(k8, "a-41", "recovered", "recovered", "Thank them for their patience.", 0.2))
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-41\"]').dataset.level === 'recovered'")
        assert "Recovered" in _card(drv, "a-41")["text"]
        beeps = _counter(drv, "beeps")
        assert beeps == 1, "the watch alert beeps once, the recovery does not"

        pub("k7", "emotion", k7.make("emotion", **_body("emotion", escalation=0.82)))
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k7\"] .meter-fill').style.width === '82%'")
        assert _tile(drv, "k7")["state"] == "calm", "the tablet derived a level the kiosk did not send"

        # (b) an alert -> its card with the hint; publish -> card-on-screen latency
        hint = "I understand this is frustrating. Offer a concrete next step."
        alert = _alert(k7, "a-42", "alert", "sustained", hint)
        t0 = time.time()
        pub("k7", "alert", alert)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-42\"]')?.dataset.shownAt")
        seen_s = time.time() - t0
        card = _card(drv, "a-42")
        latency_ms = int(card["shown"]) - t0 * 1000
        print(f"\ntablet: publish -> alert card on screen {latency_ms:.0f} ms "
              f"(selenium saw it after {seen_s * 1000:.0f} ms)")
        assert 0 <= latency_ms < 1500, latency_ms
        assert card["level"] == "alert" and hint in card["text"] and "Counter 3" in card["text"], card
        assert "Upset for a while" in card["text"] and card["button"] == "Acknowledge", card
        assert _counter(drv, "beeps") == beeps + 1
        assert _tile(drv, "k7")["alerting"] == "alert" and _tile(drv, "k7")["state"] == "alert"
        assert drv.execute_script("return document.querySelector('.card').dataset.alertId") == "a-42", "newest first"
        # QoS 1 may deliver twice: the same event_id is shown and sounded once
        handled = _counter(drv, "handled")
        pub("k7", "alert", alert)
        _wait_js(drv, f"return Number(document.body.dataset.handled) > {handled}")
        assert _card(drv, "a-42")["count"] == 1 and _counter(drv, "beeps") == beeps + 1

        # (e) landscape screenshot once the highlight animation is over; then the portrait layout stacks
        _wait_js(drv, "return !document.querySelector('.card.fresh')", 6)
        png = drv.get_screenshot_as_png()
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (1280, 800), (width, height)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(png)
        assert drv.execute_script(LAYOUT) == "columns"
        _viewport(drv, 800, 1280)
        _wait_js(drv, f"return (() => {{ {LAYOUT} }})() === 'stacked'")
        _viewport(drv, 1280, 800)
        _wait_js(drv, f"return (() => {{ {LAYOUT} }})() === 'columns'")

        # (c) Acknowledge -> the ack JSON on the kiosk's ack topic, QoS 1
        drv.find_element("css selector", '.card[data-alert-id="a-42"] .ack').click()
        msg = acks.wait_for(lambda m: m.topic == f"{PREFIX}/{SITE}/k7/ack")
        ack = json.loads(msg.payload)
        assert ack == {"alert_id": "a-42", "level": "alert", "by": "tablet"} and msg.qos == 1  # the level it saw
        ack_schema = STATIC_DIR.parent / "events" / "schemas" / "ack.schema.json"  # the kiosk's inbound contract
        if ack_schema.is_file():
            Draft202012Validator(json.loads(ack_schema.read_text())).validate(ack)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-42\"]').dataset.ack === 'done'")
        assert _card(drv, "a-42")["button"] == "Acknowledged" and _tile(drv, "k7")["alerting"] == ""

        # (d) the kiosk dies: the broker publishes its retained last will -> the tile shows offline
        kiosk.kill()
        kiosk.wait(5)
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k7\"]').dataset.online === 'offline'")
        t = _tile(drv, "k7")
        assert t["presence"] == "Offline" and t["note"].startswith("Offline since"), t
        assert _tile(drv, "k8")["online"] == "online"
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait(5)
        client.loop_stop()
        client.disconnect()


def test_alert_cards_are_capped(browser: Any, tablet_url: str) -> None:
    """A flood of distinct open alert ids keeps at most 100 cards (oldest dropped): the page cannot grow unbounded."""
    browser.get(f"{tablet_url}/?lang=en")
    sizes = browser.execute_script("""
      const alerts = new Map();
      const {upsertAlert} = window.TabletCards({alerts, kiosks: new Map(), kiosk: () => ({}), renderTile: () => {},
        t: (k) => k, timeOf: () => "", hintText: (h) => h.text, hintLang: () => "en", beep: () => {},
        publish: () => true, cfg: {}});
      for (let i = 0; i < 400; i++) upsertAlert("k1", {alert_id: "a" + i, level: "watch", reason: "rising",
        hint: {text: "x", lang: "en"}}, 1000 + i, false);
      return [alerts.size, document.querySelectorAll('#cards .card').length, alerts.has("k1/a399"),
              alerts.has("k1/a0")];""")
    assert sizes == [100, 100, True, False]
