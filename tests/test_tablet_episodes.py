"""Staff tablet: an episode's level, sound and acknowledgement follow the kiosk through reconnects, reminders,
replays and clock steps (headless Chromium against a real mosquitto; messages published as a kiosk would)."""

from __future__ import annotations

import time
from typing import Any

from conftest import Broker, sample_body
from test_tablet_browser import (  # noqa: F401 - fixtures
    SITE,
    _card,
    _counter,
    _factory,
    _publisher,
    _wait_js,
    browser,
    tablet_url,
)

from edge.events.contract import iso


def _episode(alert_id: str, level: str, since: float, acknowledged: bool, key: str = "sustained") -> dict[str, Any]:
    ep = sample_body("current")["episode"]
    assert isinstance(ep, dict)
    return {**ep, "alert_id": alert_id, "level": level, "since": iso(since), "acknowledged": acknowledged,
            "hint": {"lang": "en", "text": "Acknowledge the wait.", "key": key, "custom": False}}


def test_episode_level_sound_and_ack_follow_the_kiosk(browser: Any, mosquitto: Broker,  # noqa: F811
                                                    tablet_url: str) -> None:  # noqa: F811
    """(1) a watch->alert seen only in the retained `current` (the alert event missed in a Wi-Fi blip) was dropped:
    the card stayed "watch" with no sound, because the episode's start is older than the card's last event;
    (2) a reminder was silent; (3) an outbox replay of an old episode beeped as new; (4) an ack the kiosk never
    recorded stayed "Acknowledged"; (5) after the kiosk's clock stepped back, its states were dropped."""
    drv = browser
    now = time.time()
    clock = [now]
    f = _factory("k1", "Counter 1")
    f.clock = lambda: clock[0]
    client, pub = _publisher(mosquitto)
    try:
        pub("k1", "status", f.make("status", **{**sample_body("status"), "counter_name": "Counter 1",
                                                "degraded": []}), retain=True)
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
        _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k1\"][data-online=\"online\"]')")

        def alert(alert_id: str, level: str, key: str, t: float) -> dict[str, Any]:
            clock[0] = t
            return f.make("alert", **{**sample_body("alert"), "alert_id": alert_id, "level": level,
                                      "counter_name": "Counter 1",
                                      "hint": {"lang": "en", "text": "x", "key": key, "custom": False}})

        def current(ep: dict[str, Any] | None, t: float) -> dict[str, Any]:
            clock[0] = t
            return f.make("current", **{**sample_body("current"), "counter_name": "Counter 1", "episode": ep})

        pub("k1", "alert", alert("a-1", "watch", "watch", now + 1))
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]')")
        assert _counter(drv, "beeps") == 1
        # (1) the alert event was missed; the retained state says alert (episode since now - 5 s, before the watch)
        pub("k1", "current", current(_episode("a-1", "alert", now - 5, False), now + 3), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]').dataset.level === 'alert'")
        assert _counter(drv, "beeps") == 2
        # (2) a reminder of the open alert sounds again
        pub("k1", "alert", alert("a-1", "alert", "repeat", now + 60))
        _wait_js(drv, "return document.body.dataset.beeps === '3'")
        # (3) an old episode replayed from the kiosk's outbox after an outage: shown, not sounded
        pub("k1", "alert", alert("a-0", "watch", "watch", now - 600))
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-0\"]')")
        time.sleep(0.5)
        assert _counter(drv, "beeps") == 3
        # (4) ack sent (the broker took it) but the kiosk's state still has none after the grace time: not acked
        drv.execute_script("document.querySelector('.card[data-alert-id=\"a-1\"] .ack').click()")
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]').dataset.ack === 'done'")
        time.sleep(5.5)
        pub("k1", "current", current(_episode("a-1", "alert", now - 5, False), now + 70), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]').dataset.ack === ''")
        pub("k1", "current", current(_episode("a-1", "alert", now - 5, True), now + 71), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]').dataset.ack === 'done'")
        # (5) the kiosk restarts with its clock an hour behind: a live `online`, then its present state (no episode)
        clock[0] = now - 3600
        pub("k1", "status", f.make("status", **{**sample_body("status"), "counter_name": "Counter 1",
                                                "degraded": []}))
        pub("k1", "current", current(None, now - 3599), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-1\"]').dataset.level === 'ended'")
        assert _card(drv, "a-1")["count"] == 1
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_broker_address_with_credentials_is_refused(browser: Any, mosquitto: Broker,  # noqa: F811
                                                      tablet_url: str) -> None:  # noqa: F811
    """?broker=wss://user:password@host signed in with them (mqtt.js reads the URL) and kept them in the address."""
    drv = browser
    drv.get(f"{tablet_url}/?broker=ws://tablet-1:S3cret@127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
    _wait_js(drv, "return !document.getElementById('login').hidden")
    assert "S3cret" not in drv.current_url and "tablet-1" not in drv.current_url, drv.current_url
    assert drv.find_element("id", "login-error").text


def test_the_page_is_served_with_a_content_security_policy() -> None:
    """No CSP header: an injected script (a future bug) could load or send anything anywhere."""
    import threading
    import urllib.request

    from edge.tablet import make_server

    server = make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/?site=x", timeout=10) as r:
            csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'none'" in csp, csp
    finally:
        server.shutdown()
        server.server_close()


def test_a_dismissed_acknowledged_card_stays_away(browser: Any, mosquitto: Broker,  # noqa: F811
                                                  tablet_url: str) -> None:  # noqa: F811
    """The kiosk republishes its retained `current` on every change (a visit, a cue, a pause): an acknowledged card
    staff had dismissed came back each time."""
    drv = browser
    now = time.time()
    f = _factory("k2", "Counter 2")
    f.clock = lambda: now
    client, pub = _publisher(mosquitto)
    try:
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
        _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)

        def current(acknowledged: bool, t: float) -> None:
            f.clock = lambda: t
            pub("k2", "current", f.make("current", **{**sample_body("current"), "counter_name": "Counter 2",
                                                      "episode": _episode("a-5", "alert", now, acknowledged)}),
                retain=True)

        current(True, now + 1)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-5\"]')?.dataset.ack === 'done'")
        drv.execute_script("document.querySelector('.card[data-alert-id=\"a-5\"] .dismiss').click()")
        _wait_js(drv, "return !document.querySelector('.card[data-alert-id=\"a-5\"]')")
        current(True, now + 2)  # a visit or cue change: the same episode, still acknowledged
        time.sleep(0.7)
        assert not _card(drv, "a-5")
        current(False, now + 3)  # the kiosk has no ack for it (e.g. it restarted): shown again
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-5\"]')")
    finally:
        client.loop_stop()
        client.disconnect()


def test_an_offline_kiosks_episode_is_closed_not_left_open(browser: Any, mosquitto: Broker,  # noqa: F811
                                                           tablet_url: str) -> None:  # noqa: F811
    """A kiosk that crashes leaves its retained `current` describing an open episode (only a clean shutdown clears
    it): the card stayed open as if the customer were still upset. Its offline status closes it, marked offline;
    a tablet that reads the offline status first never opens it."""
    drv = browser
    now = time.time()
    f = _factory("k3", "Counter 3")
    f.clock = lambda: now
    client, pub = _publisher(mosquitto)
    try:
        pub("k3", "status", f.make("status", **{**sample_body("status"), "counter_name": "Counter 3",
                                                "degraded": []}), retain=True)
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
        _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
        pub("k3", "current", f.make("current", **{**sample_body("current"), "counter_name": "Counter 3",
                                                  "episode": _episode("a-9", "alert", now, False)}), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-9\"]')?.dataset.level === 'alert'")
        pub("k3", "status", f.make("status", **{**sample_body("status"), "state": "offline",
                                                "counter_name": "Counter 3", "degraded": []}), retain=True)
        _wait_js(drv, "return document.querySelector('.card[data-alert-id=\"a-9\"]')?.dataset.level === 'ended'")
        text = drv.execute_script("return document.querySelector('.card[data-alert-id=\"a-9\"]').innerText")
        assert "Kiosk offline" in text and "not known" in text, text
        drv.refresh()  # a tablet arriving now gets both retained messages, in either order
        _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
        _wait_js(drv, "return document.querySelector('.tile[data-kiosk=\"k3\"][data-online=\"offline\"]')")
        time.sleep(0.7)
        level = drv.execute_script("return document.querySelector('.card[data-alert-id=\"a-9\"]')?.dataset.level")
        assert level in (None, "ended"), level
    finally:
        client.loop_stop()
        client.disconnect()


def test_the_sound_button_returns_when_the_browser_suspends_audio(browser: Any, mosquitto: Broker,  # noqa: F811
                                                                  tablet_url: str) -> None:  # noqa: F811
    """The "Enable sound" button was decided once at start: audio suspended later (an interruption, a backgrounded
    tab) left staff believing alerts would beep. It follows the audio's state."""
    drv = browser
    drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={SITE}&lang=en")
    _wait_js(drv, "return document.getElementById('conn').dataset.state === 'online'", 10)
    drv.execute_script("window.TabletSound.audio().resume()")
    _wait_js(drv, "return window.TabletSound.running() && document.getElementById('sound').hidden")
    drv.execute_script("window.TabletSound.audio().suspend()")
    _wait_js(drv, "return !window.TabletSound.running() && !document.getElementById('sound').hidden", 5)
    drv.execute_script("document.getElementById('sound').click()")
    _wait_js(drv, "return window.TabletSound.running() && document.getElementById('sound').hidden", 5)
