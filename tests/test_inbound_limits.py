"""Inbound size is bounded and a flood of bad commands writes a few log lines (issue 20, item 5).

The service process and a real mosquitto without a size limit of its own: a 64 MiB `ack` never reaches the kiosk
(it announces its maximum packet size to the MQTT 5 broker), so its peak memory does not move; thousands of
malformed acks and pause commands are all counted in `health` but logged a few times a minute. The site broker's
own limit is tested in tests/test_deploy.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Broker
from kiosk_proc import Kiosk, until, write_toml

from edge.demo.media import make_demo

SITE, KIOSK = "site-l", "kiosk-l"
BASE = f"edge-emotion/{SITE}/{KIOSK}"
FLOOD = 3000


def _drops(sub: Any) -> dict[str, int]:
    healths = [json.loads(m.payload) for m in sub.messages if m.topic == f"{BASE}/health"]
    return healths[-1]["drops"] if healths else {}


def test_oversized_and_flooded_commands_cost_neither_memory_nor_log_lines(mosquitto: Broker, subscribe: Any,
                                                                           tmp_path: Path) -> None:
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": str(video), "loop": True},
        "microphone": {"source": str(audio), "loop": True},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0}})
    sub = subscribe(mosquitto, f"{BASE}/#")
    kiosk = Kiosk(cfg, tmp_path / "kiosk.log")
    try:
        until(lambda: sum(m.topic == f"{BASE}/health" for m in sub.messages) >= 3, 60, "a steady kiosk")
        peak = kiosk.memory_kb("VmHWM")
        sub.client.publish(f"{BASE}/ack", b" " * (64 * 2**20), qos=1).wait_for_publish(30)
        sub.client.publish(f"{BASE}/ack", b'{"alert_id": 7}', qos=1).wait_for_publish(5)  # after the big one
        until(lambda: _drops(sub).get("errors_ack", 0) >= 1, 20, "the small malformed ack counted")
        grown_mb = (kiosk.memory_kb("VmHWM") - peak) / 1024
        assert grown_mb < 24, f"peak memory grew by {grown_mb:.0f} MiB for an oversized ack"
        assert _drops(sub)["errors_ack"] == 1, "the 64 MiB ack reached the kiosk"
        for i in range(FLOOD):
            sub.client.publish(f"{BASE}/ack", b'{"alert_id": %d}' % i, qos=1)
            sub.client.publish(f"{BASE}/pause", b'{"action": "hold"}', qos=1)
        try:
            until(lambda: _drops(sub).get("errors_ack", 0) == FLOOD + 1 and _drops(sub).get("errors_pause") == FLOOD,
                  60, "every malformed command counted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last health drops {_drops(sub)}") from None
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
    text = kiosk.text()
    for what in ("ignored malformed ack", "ignored malformed pause command"):
        lines = [line for line in text.splitlines() if what in line]
        assert 1 <= len(lines) <= 10, (what, len(lines))


def test_rate_limited_log_holds_back_and_then_reports_the_count(caplog: Any) -> None:
    import logging

    from edge.lograte import RateLimitedLog

    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("edge.test.lograte"), burst=2, period_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="edge.test.lograte"):
        for i in range(10):
            rl.warning("k", "bad %d", i)
        rl.warning("other", "another kind")  # its own budget
        now[0] = 61.0
        rl.warning("k", "bad again")
    assert [r.getMessage() for r in caplog.records] == [
        "bad 0", "bad 1", "another kind", "bad again (8 similar line(s) held back in the last 60 s)"]
