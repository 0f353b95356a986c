"""A kiosk that dies while the broker is down leaves a retained `online`; `fleet status` flags it (issue 20).

Real processes: a persistent mosquitto (retained messages survive its restart), two kiosk processes; the broker is
killed, one kiosk is killed (-9) while it is down, the broker comes back. The dead kiosk's last will was never
sent (the broker never saw its connection drop), so its retained status still says `online`; `fleet status`
marks it STALE because no health arrives within a wait longer than its health interval, the live one not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MOSQUITTO
from kiosk_proc import ROOT, Kiosk, until, write_toml
from test_faults import PersistentBroker

from edge.demo.media import make_demo

SITE = "site-st"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    d = tmp_path / "broker"
    d.mkdir()
    os.chmod(d, 0o777)
    b = PersistentBroker(d)
    b.start()
    yield b
    b.stop()


def test_fleet_status_flags_a_retained_online_without_health(broker: PersistentBroker, tmp_path: Path) -> None:
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    kiosks = {}
    for name in ("alive", "dead"):
        cfg = write_toml(tmp_path / f"{name}.toml", {
            "identity": {"site_id": SITE, "kiosk_id": name},
            "camera": {"source": str(video), "loop": True},
            "microphone": {"source": str(audio), "loop": True},
            "mqtt": {"host": broker.host, "port": broker.port, "health_interval_s": 1.0,
                     "reconnect_min_s": 0.2, "reconnect_max_s": 0.5}})
        kiosks[name] = Kiosk(cfg, tmp_path / f"{name}.log")
    try:
        for k in kiosks.values():
            until(lambda k=k: "connected to MQTT broker" in k.text(), 60, "both kiosks connected")
        until(lambda: (broker.workdir / "mosquitto.db").exists(), 10, "the broker's persistence file")
        time.sleep(1.5)  # autosave_interval 1: the retained `online` statuses are on disk
        broker.stop()  # kill -9
        kiosks["dead"].stop(signal.SIGKILL)  # dies while the broker is down: no last will ever goes out
        broker.start()
        until(lambda: kiosks["alive"].text().count("connected to MQTT broker") >= 2, 20, "the live kiosk back")
        r = subprocess.run([sys.executable, "-m", "edge", "fleet", "status", "--host", broker.host, "--port",
                            str(broker.port), "--site", SITE, "--wait", "3", "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rows = {row["kiosk_id"]: row for row in json.loads(r.stdout)}
        assert rows["dead"]["state"] == "online" and rows["dead"]["stale"] is True, rows["dead"]
        assert rows["alive"]["state"] == "online" and rows["alive"]["stale"] is False, rows["alive"]
        text = subprocess.run([sys.executable, "-m", "edge", "fleet", "status", "--host", broker.host, "--port",
                               str(broker.port), "--site", SITE, "--wait", "3"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        dead_line = next(line for line in text.stdout.splitlines() if f"{SITE}/dead" in line)
        assert "online STALE" in dead_line and "1 of them STALE" in text.stderr
    finally:
        for k in kiosks.values():
            k.stop()
