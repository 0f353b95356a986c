"""``edge-emotion bench tablet``: publish at the kiosk → alert card on the tablet screen, on loopback.

A private mosquitto (TCP + websockets), the real tablet server, Debian's headless Chromium (selenium, no
downloads) and the kiosk's real ``MqttPublisher``. Each alert's publish time (``time.time()`` just before
``publish``) is compared with the card's ``data-shown-at`` (``Date.now()`` in the first animation frame after the
card was inserted, set by edge/tablet/cards.js); both clocks are this machine's wall clock.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edge.bench.broker import LocalBroker
from edge.bench.common import machine, pct

log = logging.getLogger(__name__)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,800",
         "--lang=en-US", "--autoplay-policy=no-user-gesture-required"]
SITE = "bench-site"


def _browser(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def _wait(drv: Any, script: str, timeout: float, *args: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script, *args)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


def run_tablet(count: int, gap_s: float = 0.3) -> dict[str, Any]:
    """Publish ``count`` alerts ``gap_s`` apart; publish → card-shown latencies (ms) and how many never showed."""
    from edge.config import IdentityConfig, MqttConfig
    from edge.events import EventFactory
    from edge.tablet import make_server
    from edge.transport.mqtt import MqttPublisher

    identity = IdentityConfig(site_id=SITE, kiosk_id="k1", counter_name="Counter 1")
    factory = EventFactory(identity)
    server = make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sent: dict[str, float] = {}
    with LocalBroker(websockets=True) as broker, tempfile.TemporaryDirectory(prefix="edge-bench-chromium-") as prof:
        pub = MqttPublisher(MqttConfig(host="127.0.0.1", port=broker.port), identity, factory,
                            lambda: {"version": "bench", "counter_name": "Counter 1", "models": {}, "degraded": []})
        pub.start()
        drv = _browser(Path(prof))
        try:
            drv.get(f"http://127.0.0.1:{server.server_address[1]}/?broker=ws://127.0.0.1:{broker.ws_port}"
                    f"&site={SITE}&lang=en")
            if not _wait(drv, "return document.getElementById('conn').dataset.state === 'online'", 15):
                raise RuntimeError("the tablet did not connect to the broker")
            _wait(drv, "return document.querySelector('.tile[data-kiosk=\"k1\"]')", 10)  # retained online status
            for i in range(count):
                aid = str(uuid.uuid4())
                body = {"alert_id": aid, "visit_id": str(uuid.uuid4()), "level": "alert", "reason": "sustained",
                        "evidence": {"escalation": 0.8, "duration_s": 2.5, "modalities": ["face", "voice"]},
                        "hint": {"lang": "en", "text": f"Acknowledge the feeling ({i})."}, "counter_name": "Counter 1"}
                payload = factory.make("alert", **body)
                sent[aid] = time.time() * 1000
                pub.publish("alert", payload)
                _wait(drv, "const c = document.querySelector(`.card[data-alert-id=\"${arguments[0]}\"]`);"
                      "return c && c.dataset.shownAt;", 5, aid)
                time.sleep(gap_s)
            shown = drv.execute_script("const o = {}; document.querySelectorAll('.card').forEach(c => "
                                       "{ o[c.dataset.alertId] = Number(c.dataset.shownAt || 0); }); return o;")
        finally:
            drv.quit()
            pub.stop()
            server.shutdown()
            server.server_close()
    lat = [shown[a] - t for a, t in sent.items() if shown.get(a)]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "count": count,
            "shown": len(lat), "missing": count - len(lat), "publish_to_card_ms": pct(lat),
            "max_ms": round(max(lat), 1) if lat else None, "samples_ms": [round(x, 1) for x in lat]}


def tablet_markdown(res: dict[str, Any]) -> str:
    """Markdown lines for docs/bench/alerts.md."""
    p = res["publish_to_card_ms"]
    return (f"| publish at the kiosk → alert card on screen (loopback, headless Chromium), n={res['shown']} of "
            f"{res['count']} | p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms, max {res['max_ms']} ms — target "
            f"≤ 250 ms {'met' if p['n'] and p['p95'] <= 250 else '**not met**'} (p95) |")


def cli_tablet(args: Any) -> int:
    """Entry of ``edge-emotion bench tablet``."""
    res = run_tablet(args.count)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tablet.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "samples_ms"}, indent=1))
    print(tablet_markdown(res))
    return 0 if res["missing"] == 0 else 1
