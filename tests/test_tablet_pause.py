"""Staff pause from the tablet: Chromium clicks Pause, the real kiosk service stops analysing and says so."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from conftest import Broker
from test_pause import SpyFace, SpyVoice, _cfg, _until
from test_tablet_browser import _tile, _viewport, _wait_js, browser, tablet_url  # noqa: F401 - fixtures

from edge.demo.media import make_demo
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service

TILE = '.tile[data-kiosk="kiosk-p"]'


def _pause_button(drv: Any) -> dict[str, Any]:
    return drv.execute_script(f"""const b = document.querySelector('{TILE} .pause');
        return b ? {{text: b.textContent, hidden: b.hidden, disabled: b.disabled}} : null;""") or {}


def test_tablet_pauses_and_resumes_the_real_kiosk(browser: Any, mosquitto: Broker, tablet_url: str,  # noqa: F811
                                                  tmp_path: Path) -> None:
    drv = browser
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    cfg = _cfg(camera={"source": str(video), "loop": True}, microphone={"source": str(audio), "loop": True},
               mqtt={"host": mosquitto.host, "port": mosquitto.port})
    face, voice = SpyFace(), SpyVoice()
    svc = Service(cfg, Analyzers(face=face, voice=voice))  # type: ignore[arg-type]
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    try:
        _viewport(drv, 1280, 800)
        drv.get(f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site=site-p&lang=en")
        _wait_js(drv, f"return document.querySelector('{TILE}[data-online=\"online\"]')", 10)
        assert _pause_button(drv) == {"text": "Pause analysis", "hidden": False, "disabled": False}
        _until(lambda: face.calls > 0 and voice.calls > 0, timeout=10)

        drv.find_element("css selector", f"{TILE} .pause").click()
        _wait_js(drv, f"return document.querySelector('{TILE}').dataset.paused === 'true'", 5)
        assert svc.paused.is_set(), "the kiosk did not receive the tablet's pause command"
        t = _tile(drv, "kiosk-p")
        assert t["state"] == "paused" and "paused by staff" in t["note"], t
        assert _pause_button(drv)["text"] == "Resume analysis"
        time.sleep(0.5)  # a frame/window already inside analyze() may finish
        calls = (face.calls, voice.calls)
        time.sleep(1.5)
        assert (face.calls, voice.calls) == calls, "analysis ran while paused from the tablet"

        drv.find_element("css selector", f"{TILE} .pause").click()
        _wait_js(drv, f"return document.querySelector('{TILE}').dataset.paused === 'false'", 5)
        assert not svc.paused.is_set()
        _until(lambda: face.calls > calls[0] and voice.calls > calls[1], timeout=10)
        assert _pause_button(drv)["text"] == "Pause analysis"
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        svc.stop.set()
        runner.join(timeout=10)
