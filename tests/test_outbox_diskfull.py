"""A full disk under the outbox: the real cause is reported, counted, shown, and the kiosk keeps trying (issue 20,
item 6).

The service process with its state folder on a tiny tmpfs (root only: it mounts one) while the broker is down:
SQLite reports "database or disk is full" (not the ROLLBACK's own error), `health` counts the error and the rows
waiting in the file, the retained `status` lists the outbox in `degraded`; once space is freed the database is
used again and every row that waited in it is delivered.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import Kiosk, until, write_toml

from edge.demo.media import make_demo

SITE, KIOSK = "site-d", "kiosk-d"
BASE = f"edge-emotion/{SITE}/{KIOSK}"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs with all but 96 KiB taken by a filler file."""
    mnt = tmp_path / "state"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        (mnt / "filler").write_bytes(b"\0" * (free - 96 * 1024))
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _ids(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [json.loads(p)["event_id"] for (p,) in con.execute("SELECT payload FROM outbox")]
    finally:
        con.close()


def test_disk_full_is_reported_counted_shown_and_retried(mosquitto: Broker, subscribe: Any, tiny_fs: Path,
                                                         tmp_path: Path) -> None:
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": str(video), "loop": True},
        "microphone": {"source": str(audio), "loop": True},
        "fusion": {"emit_interval_s": 0.2, "visit_start_s": 0.3},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0,
                 "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
        "state": {"dir": str(tiny_fs)}})
    mosquitto.stop()  # events pile up in the outbox until the disk is full
    kiosk = Kiosk(cfg, tmp_path / "kiosk.log")
    try:
        until(lambda: "database or disk is full" in kiosk.text() or "failed (" in kiosk.text()
              or kiosk.proc.poll() is not None, 120, "the disk to fill up")
        text = kiosk.text()
        assert kiosk.proc.poll() is None, text[-3000:]
        assert "database or disk is full" in text and "cannot rollback" not in text, text[-3000:]
        waiting = _ids(tiny_fs / "outbox.db")
        assert waiting, "no row was stored before the disk filled up"
        mosquitto.start()
        sub = subscribe(mosquitto, f"{BASE}/#")
        status = sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b"outbox: " in m.payload, 20)
        assert b"database or disk is full" in status.payload
        health = json.loads(sub.wait_for(lambda m: m.topic == f"{BASE}/health"
                                         and b'"outbox_stranded"' in m.payload, 20).payload)
        assert health["queue_depth"]["outbox_stranded"] == len(waiting) and health["drops"]["outbox_errors"] >= 1
        (tiny_fs / "filler").unlink()  # space again: the kiosk goes back to its database within ~10 s
        sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b'"degraded":[]' in m.payload, 30)
        got = {json.loads(m.payload).get("event_id") for m in sub.messages}
        until(lambda: set(waiting) <= {json.loads(m.payload).get("event_id") for m in sub.messages}, 20,
              f"the {len(waiting)} events that waited in the file ({len(set(waiting) - got)} missing)")
        assert "works again" in kiosk.text()
    finally:
        code = kiosk.stop()
    assert code == 0, kiosk.text()[-3000:]
