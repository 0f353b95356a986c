"""The demo shows the product (issue 21): scripts/demo, with no research data, prints an alert line within its
default duration, an acknowledgement and the recovery, and the URL of a tablet page that shows the alert live."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tablet_kit import browsers, js, severe  # noqa: F401 - fixture

from edge.demo.scripted import DEMO_CYCLE_S, demo_timeline

ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_escalates_acknowledges_recovers_and_cares() -> None:
    """The scripted customer: nobody, calm, rising, upset, calming, nobody, subdued; the cycle matches the media."""
    from edge.demo.media import PRESENT
    from edge.policy.fusion import escalation_score

    esc = {t: escalation_score(p) for t in range(60) if (p := demo_timeline(float(t))) is not None}
    present = [t for t in range(60) if any(a <= t < b for a, b in PRESENT)]
    assert sorted(esc) == present and DEMO_CYCLE_S == 60.0
    assert max(esc.values()) >= 0.7 and esc[5] < 0.2 and esc[37] < 0.3
    assert demo_timeline(50.0)[3] > 0.5  # type: ignore[index] - sad: a care cue, not an escalation
    assert escalation_score(demo_timeline(50.0)) < 0.45  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                    reason="mosquitto is not installed")
def test_scripts_demo_prints_an_alert_ack_recovery_and_a_live_tablet_url(browsers: Any) -> None:  # noqa: F811
    """The real script (set-up skipped: the venv exists), default duration; the tablet URL opened in Chromium."""
    env = {**os.environ, "EDGE_EMOTION_SKIP_SETUP": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DEMO_SECONDS", None)
    proc = subprocess.Popen([str(ROOT / "scripts" / "demo")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    t0 = time.monotonic()
    got: dict[str, float] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    drv = None
    try:
        while time.monotonic() - t0 < 75 and not ("recovered" in got and drv is not None):
            text = "\n".join(lines)
            url = re.search(r"staff tablet, live: (http://\S+)", text)
            if url and drv is None:
                drv = browsers()
                drv.get(url.group(1))
            for name, pat in (("alert", r" alert +alert +reason="), ("ack", r"demo: staff acknowledged alert"),
                              ("recovered", r" alert +recovered +reason=recovered")):
                if name not in got and re.search(pat, text):
                    got[name] = time.monotonic() - t0
            time.sleep(0.2)
        out = "\n".join(lines)
        assert "SCRIPTED READINGS" in out and "SCRIPTED" in re.search(r"status +online .*", out).group(0)  # type: ignore[union-attr]
        assert set(got) == {"alert", "ack", "recovered"}, (got, out[-3000:])
        assert got["alert"] < 60 and got["alert"] < got["ack"] < got["recovered"], got  # within the default duration
        hint = re.search(r' alert +alert .* hint="([^"]+)', out)
        assert hint and len(hint.group(1)) > 20, out[-2000:]
        assert drv is not None
        js(drv, "return [...document.querySelectorAll('.card')].some(c => c.dataset.level === 'recovered')")
        assert js(drv, "return document.querySelector('.tile[data-kiosk=\"demo-kiosk\"]')?.dataset.online") == "online"
        assert drv.execute_script("return document.body.dataset.lastBeep") == "alert"
        assert not severe(drv)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
