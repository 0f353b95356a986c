"""Helpers for staff-tablet tests against real components: several headless Chromiums, a real kiosk service."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from screenshots import shot_path
from test_tablet_browser import CHROME_FLAGS, CHROMEDRIVER, CHROMIUM, _skip_reason, _wait_js

from edge.config import KioskConfig, parse_config
from edge.demo.media import make_demo
from edge.demo.scripted import ScriptedFace, blend
from edge.pipeline.service import Service


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """``browsers()`` -> one more headless Chromium (each its own profile and page state); all quit at teardown."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    made: list[Any] = []

    def make() -> Any:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path / f'chromium-{len(made)}'}",
                     "--ignore-certificate-errors"]:
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        drv = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=opts)
        made.append(drv)
        return drv

    yield make
    for drv in made:
        drv.quit()


class Dial:
    """What the scripted customer feels now; tests turn it (None: nobody at the counter)."""

    def __init__(self, probs: np.ndarray | None = None) -> None:
        """Start with ``probs`` (default: a calm customer)."""
        self.probs = blend(0.02) if probs is None else probs

    def __call__(self, _t: float) -> np.ndarray | None:
        """The timeline of ScriptedFace."""
        return self.probs


def kiosk_config(media: Path, broker: Any, site: str, kiosk: str, name: str, **over: Any) -> KioskConfig:
    """A kiosk on looping generated media, quick visits and reconnects, talking to ``broker``."""
    video, audio = make_demo(media, seconds=4.0)
    data: dict[str, Any] = {
        "identity": {"site_id": site, "kiosk_id": kiosk, "counter_name": name},
        "camera": {"source": str(video), "loop": True}, "microphone": {"enabled": False},
        "fusion": {"emit_interval_s": 0.5, "visit_start_s": 0.2, "visit_end_s": 4.0},
        "analysis": {"face_fps": 8.0, "voice": False},
        "mqtt": {"host": broker.host, "port": broker.port, "health_interval_s": 2.0, "reconnect_min_s": 0.2,
                 "reconnect_max_s": 1.0},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


class RunningKiosk:
    """The real kiosk service in a thread with a scripted face (the real fusion, alert policy and MQTT)."""

    def __init__(self, cfg: KioskConfig, dial: Dial) -> None:
        """Start it."""
        from edge.pipeline.analyzers import Analyzers

        self.dial = dial
        self.svc = Service(cfg, Analyzers(face=ScriptedFace(dial), versions={"face_expression": "scripted"}))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.svc.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop it (clean exit: offline status, final current state)."""
        self.svc.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


class Counter:
    """A tablet online on ``site`` (English) and a running kiosk with a dial: the set-up several tablet tests share."""

    def __init__(self, browsers: Callable[[], Any], mosquitto: Any, subscribe: Any, tablet_url: str, media: Path,
                 site: str, kiosk: str, name: str) -> None:
        """Subscribe to the kiosk's topics, open the first tablet, wait for it online, then start the kiosk."""
        self.sub = subscribe(mosquitto, f"edge-emotion/{site}/{kiosk}/#")
        self.url = f"{tablet_url}/?broker=ws://127.0.0.1:{mosquitto.ws_port}&site={site}"
        self.first = browsers()
        self.first.get(self.url + "&lang=en")
        js(self.first, "return document.getElementById('conn').dataset.state === 'online'")
        self.dial = Dial()
        self.kiosk = RunningKiosk(kiosk_config(media, mosquitto, site, kiosk, name), self.dial)


def js(drv: Any, script: str, timeout: float = 10.0) -> Any:
    """Poll a JS expression (``return ...``) until truthy; return its value (10 s by default)."""
    return _wait_js(drv, script, timeout)


def screenshot(drv: Any, name: str, size: tuple[int, int]) -> Path:
    """Write a PNG of the page at exactly ``size`` (CSS px) to ``shot_path(name)``; returns the path."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.5)
    png = drv.get_screenshot_as_png()
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == size
    path = shot_path(name)
    path.write_bytes(png)
    return path


def severe(drv: Any) -> list[Any]:
    """Severe browser console entries (errors)."""
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
