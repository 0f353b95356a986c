"""Nothing secret-looking is ever echoed: logs, published events and check-config (issue 20, item 6).

The service process (debug logging) with camera sources that carry credentials the way GStreamer and RTSP
strings do, against a real mosquitto: no secret in its log, its `status`, `health` or `configstate`. And
`edge-emotion check-config` on a file with a misspelt and a mistyped password names the keys, never the values.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import ROOT, Kiosk, until, write_toml

from edge.demo.media import make_demo

SITE, KIOSK = "site-s", "kiosk-s"
BASE = f"edge-emotion/{SITE}/{KIOSK}"
SECRETS = ("S3cr3tPw", "S3cr3tTok", "S3cr3tQry", "S3cr3tUrl", "S3cr3tMqtt")
SOURCES = {
    "gstreamer": ("rtspsrc location=rtsp://admin:S3cr3tUrl@127.0.0.1:9/stream user-id=admin user-pw=S3cr3tPw "
                  "! rtph264depay ! avdec_h264 ! videoconvert ! appsink"),
    "rtsp": "rtsp://127.0.0.1:9/stream?user=admin&password=S3cr3tQry&token=S3cr3tTok",
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_source_credentials_never_reach_logs_or_events(kind: str, mosquitto: Broker, subscribe: Any,
                                                       tmp_path: Path) -> None:
    audio = make_demo(tmp_path / "media", seconds=3.0)[1]
    cfg = write_toml(tmp_path / "k.toml", {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": SOURCES[kind], "kind": kind, "reopen_min_s": 0.2, "reopen_max_s": 0.5},
        "microphone": {"source": str(audio), "loop": True},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0,
                 "username": "kiosk", "password": "S3cr3tMqtt"}})
    mosquitto.stop()  # the camera fails before the first connect, so `online` carries its error
    kiosk = Kiosk(cfg, tmp_path / "kiosk.log", verbose=True)
    try:
        until(lambda: "reopening with back-off" in kiosk.text(), 60, "the camera error")
        mosquitto.start()
        sub = subscribe(mosquitto, f"{BASE}/#")
        status = sub.wait_for(lambda m: m.topic == f"{BASE}/status" and b"camera: reopening" in m.payload, 20)
        sub.wait_for(lambda m: m.topic == f"{BASE}/health" and b"127.0.0.1" in m.payload, 20)
        sub.wait_for(lambda m: m.topic == f"{BASE}/configstate", 20)
        assert b"***" in status.payload
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
    text = kiosk.text()
    assert "127.0.0.1:9" in text  # the source is logged, its credentials are not
    leaks = [(s, where) for s in SECRETS for where, blob in
             [("log", text)] + [(m.topic, m.payload.decode(errors="replace")) for m in sub.messages] if s in blob]
    assert not leaks, leaks


def test_check_config_names_secret_keys_but_never_echoes_their_values(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n'
                   '[microphone]\nkind = "rtsp://u:S3cr3tUrl@mic.local/x"\n'  # an echoed value: redacted
                   '[mqtt]\npasword = "S3cr3tPw-misspelt"\npassword = 31415926\n'
                   '[mqtt.tls]\nkey_file = 27182818\ncert_file = "c.pem"\n'
                   '[camera]\nsource = "rtspsrc user-pw=S3cr3tQry ! appsink"\nwidth = "wide"\n', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "edge", "check-config", "--no-models", str(cfg)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    for key in ("mqtt.pasword", "mqtt.password", "mqtt.tls.key_file", "microphone.kind", "camera.width"):
        assert key in out, (key, out)
    for secret in (*SECRETS, "31415926", "27182818"):
        assert secret not in out, (secret, out)
    assert "rtsp://***@mic.local/x" in out and "'wide'" in out  # harmless values are still shown


def test_a_mistyped_section_or_value_never_echoes_a_nested_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A section given as a list (``[[mqtt]]``) or a dict where a string belongs is shown with its secrets masked,
    also a password expanded from the environment and a token inside a validator's own message."""
    from edge.config import ConfigError, parse_config

    monkeypatch.setenv("EDGE_EMOTION_MQTT_PASSWORD", "S3cr3tMqtt")
    bad = {"identity": {"site_id": "s", "kiosk_id": "k"},
           "mqtt": [{"host": "b", "password": "${EDGE_EMOTION_MQTT_PASSWORD}"}],
           "schedule": {"timezone": "Europe/Berlin?token=S3cr3tTok"},
           "camera": {"source": {"url": "rtsp://cam", "auth": {"user": "u", "pw": "S3cr3tPw"}}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(bad)
    out = str(exc.value)
    for secret in SECRETS:
        assert secret not in out, (secret, out)
    assert "mqtt:" in out and "'host': 'b'" in out and "schedule.timezone" in out and "camera.source" in out


def test_inbound_schema_errors_show_no_nested_values() -> None:
    """A malformed ack or pause command is logged by path and type, not with the values it carried."""
    from edge.events import SchemaError
    from edge.events.contract import validate_inbound

    with pytest.raises(SchemaError) as exc:
        validate_inbound("pause", {"by": {"user": "amy", "token": "S3cr3tTok"}, "paused": True})
    out = str(exc.value)
    assert "S3cr3tTok" not in out and "<dict> is not of type 'string'" in out, out


@pytest.mark.parametrize("source", ["rtsp://admin:Winter@2026@10.0.0.7:554/stream1",
                                    "rtsp://admin:p@ss@10.0.0.7/stream1?x=1 (timeout)"])
def test_a_password_with_an_at_sign_is_hidden_whole(source: str) -> None:
    """FFmpeg splits user:password@host at the last @, so the whole user part up to it is the secret."""
    from edge.redact import redact

    out = redact(source)
    assert out.startswith("rtsp://***@10.0.0.7") and "2026" not in out and "ss@" not in out
    assert redact("see rtsp://cam/a@b for details") == "see rtsp://cam/a@b for details"  # an @ in the path stays
