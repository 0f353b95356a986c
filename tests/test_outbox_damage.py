"""A damaged outbox at start: the events lost with it are counted in health and logged (issue 20, lower severity).

The service process and a real mosquitto: an `outbox.db` of the wrong shape holding 5 rows is moved aside and
`health.drops.outbox_corrupt` says 5; an empty (0-byte) `outbox.db` is logged instead of silently reused.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import Kiosk, write_toml

from edge.demo.media import make_demo

SITE, KIOSK = "site-o", "kiosk-o"
BASE = f"edge-emotion/{SITE}/{KIOSK}"


@pytest.mark.parametrize("damage", ["wrong_shape", "empty"])
def test_damaged_outbox_is_counted_and_logged(damage: str, mosquitto: Broker, subscribe: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "outbox.db"
    if damage == "empty":
        db.write_bytes(b"")
    else:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE outbox (x INTEGER)")
        con.executemany("INSERT INTO outbox VALUES (?)", [(i,) for i in range(5)])
        con.commit()
        con.close()
    video, audio = make_demo(tmp_path / "media", seconds=3.0)
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": str(video), "loop": True}, "microphone": {"source": str(audio), "loop": True},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0},
        "state": {"dir": str(state)}})
    sub = subscribe(mosquitto, f"{BASE}/#")
    kiosk = Kiosk(cfg, tmp_path / "kiosk.log")
    try:
        health = json.loads(sub.wait_for(lambda m: m.topic == f"{BASE}/health", 60).payload)
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
    text = kiosk.text()
    if damage == "empty":
        assert "is empty (0 bytes)" in text and health["drops"].get("outbox_corrupt", 0) == 0
    else:
        assert "copied to a new file, 5 lost" in text and (state / "outbox.db.corrupt").exists()
        assert health["drops"]["outbox_corrupt"] == 5 and health["mqtt"]["dropped"] >= 5
