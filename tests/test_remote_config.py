"""Remote config over MQTT: merge/validate/redact/persist units, live application, refusals, restart re-application."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import run_fed
from kiosk_proc import until

from edge.config import KioskConfig, parse_config
from edge.events import EventFactory, load_schema, validate
from edge.face.expression import FaceAnalyzer
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.remote_apply import apply_live
from edge.pipeline.service import Service
from edge.transport.remote_config import (
    CONFIG_MAX_BYTES,
    OVERLAY_FILE,
    REMOTE_FIELDS,
    RemoteConfig,
    RemoteConfigError,
    check_keys,
    effective,
    merge_patch,
    parse_message,
    redact,
)
from edge.types import EMOTIONS, FaceBox, Frame
from edge.voice.model import VoiceAnalyzer
from edge.voice.vad import Vad

NOTICE = {"en": "Emotion recognition in use at this counter; ask staff to pause."}
STAFF = [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]]


def base(**over: Any) -> KioskConfig:
    data: dict[str, Any] = {"identity": {"site_id": "site-r", "kiosk_id": "kiosk-r", "counter_name": "C1"},
                            "mqtt": {"enabled": False}}
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


def msg(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- pure logic -------------------------------------------------------------------------------------------------
def test_merge_patch_is_rfc7396() -> None:
    target = {"alerts": {"a": 1, "hints": {"en": {"watch": "x", "rising": "y"}}}, "fusion": {"b": [1, 2]}}
    patch = {"alerts": {"a": None, "hints": {"en": {"watch": "z"}}}, "fusion": {"b": [3]}, "privacy": {"c": 1}}
    assert merge_patch(target, patch) == {"alerts": {"hints": {"en": {"watch": "z", "rising": "y"}}},
                                          "fusion": {"b": [3]}, "privacy": {"c": 1}}
    assert merge_patch({"alerts": {"a": 1}}, {"alerts": {"a": None}}) == {}  # an emptied section disappears
    assert target["alerts"]["a"] == 1  # inputs are not modified


@pytest.mark.parametrize(("patch", "want"), [
    ({"camera": {"source": "rtsp://evil/"}}, "camera: not remotely changeable"),
    ({"identity": {"kiosk_id": "k2"}}, "identity: not remotely changeable"),
    ({"mqtt": {"host": "evil.example"}}, "mqtt: not remotely changeable"),
    ({"models": {"dir": "/tmp"}}, "models: not remotely changeable"),
    ({"microphone": {"source": "x"}}, "microphone: not remotely changeable"),
    ({"state": {"dir": "/tmp"}}, "state: not remotely changeable"),
    ({"analysis": {"queue_size": 4}}, "analysis.queue_size: not remotely changeable"),
    ({"analysis": {"face": False}}, "analysis.face: not remotely changeable"),
    ({"privacy": {"profile": "custom"}}, "privacy.profile: not remotely changeable"),
    ({"base_dir": "/"}, "base_dir: unknown section"),
    ({"colour": {}}, "colour: unknown section"),
    ({"alerts": [1]}, "alerts: must be an object"),
])
def test_non_changeable_keys_are_refused_by_name(patch: dict[str, Any], want: str) -> None:
    errors = check_keys(patch)
    assert len(errors) == 1 and errors[0].startswith(want), errors


def test_inbound_schema_matches_the_changeable_sections() -> None:
    schema = load_schema("config")
    assert set(schema["properties"]) == set(REMOTE_FIELDS) and schema["additionalProperties"] is False
    for section, fields in REMOTE_FIELDS.items():
        for f in fields or ():
            assert f in KioskConfig.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
            assert f"`{f}`" in schema["properties"][section]["description"]
    assert check_keys({"alerts": {"alert_threshold": 0.7}, "fusion": None}) == []


def test_configstate_overlay_covers_every_remotely_changeable_section(tmp_path: Path) -> None:
    """Issue 22: a remote ``schedule`` change was applied but its configstate refused by our own schema."""
    overlay_schema = load_schema("configstate")["properties"]["overlay"]
    assert set(overlay_schema["properties"]) == set(REMOTE_FIELDS)
    week = {"enabled": True, "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}]}
    rc = RemoteConfig(base(), tmp_path)
    body = rc.handle(msg({"schedule": week}), lambda c: None)
    assert body["accepted"] and body["overlay"] == {"schedule": week}
    EventFactory(rc.cfg.identity).make("configstate", **body)  # schema-valid: it is published
    restarted = RemoteConfig(base(), tmp_path)  # the start-up body (re-published, retained) says it is in force
    assert restarted.body["trigger"] == "startup" and restarted.body["overlay"] == {"schedule": week}
    EventFactory(restarted.cfg.identity).make("configstate", **restarted.body)


@pytest.mark.parametrize(("data", "want"), [
    (b"{not json", "not JSON"), (b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "must be a JSON object"),
    (b'{"alerts": {"sustain_s": NaN}}', "not JSON"), (b" " * (CONFIG_MAX_BYTES + 1), "too large"),
])
def test_malformed_messages(data: bytes, want: str) -> None:
    with pytest.raises(RemoteConfigError, match=want):
        parse_message(data)


def test_validation_uses_the_config_models_with_key_paths() -> None:
    cfg = base()
    with pytest.raises(RemoteConfigError) as exc:
        effective(cfg, {"alerts": {"alert_threshold": 1.5, "bogus": 1},
                        "analysis": {"customer_zone": [0.5, 0, 0.2, 1]}})
    text = "\n".join(exc.value.errors)
    assert "alerts.alert_threshold: Input should be less than or equal to 1" in text
    assert "alerts.bogus: Extra inputs are not permitted" in text
    assert "analysis.customer_zone: Value error, must be x0 < x1" in text
    with pytest.raises(RemoteConfigError, match="thresholds must be release_threshold < watch_threshold"):
        effective(cfg, {"alerts": {"watch_threshold": 0.2}})
    eu = base(privacy={"profile": "eu", "staff_zones": [STAFF], "notice_text": NOTICE}, analysis={"voice": False})
    with pytest.raises(RemoteConfigError) as exc:
        effective(eu, {"privacy": {"staff_zones": []}, "fusion": {"emit_interval_s": 0.5}})
    assert exc.value.errors == ["privacy.staff_zones: the eu profile requires at least one staff zone",
                                "fusion.emit_interval_s: the eu profile requires >= 1.0 (no per-frame events; "
                                "got 0.5)"]
    new = effective(cfg, {"alerts": {"hints": {"en": {"watch": "${HOME} stays literal"}}}})
    assert new.alerts.hints["en"]["watch"] == "${HOME} stays literal"  # no environment expansion from outside
    assert new.identity == cfg.identity and new.base_dir == cfg.base_dir


def test_configstate_carries_the_privacy_reports_config_hash() -> None:
    """A privacy officer could not tell whether a kiosk still ran the configuration a signed report describes."""
    from edge.privacy.report import config_hash
    from edge.transport.remote_config import RemoteConfig

    cfg = base()
    remote = RemoteConfig(cfg, None)
    body = remote.handle(json.dumps({"alerts": {"alert_threshold": 0.8}}).encode(), lambda c: None)
    assert body["accepted"] and body["config_hash"] == config_hash(remote.cfg) != config_hash(cfg)


def test_redact_hides_secrets() -> None:
    cfg = base(mqtt={"password": "s3cret-pw", "username": "k", "tls": {"cert_file": "c.pem", "key_file": "/k/key.pem"}},
               camera={"source": "rtsp://cam:s3cret-cam@10.0.0.5/stream"})
    out = redact(cfg)
    text = json.dumps(out)
    assert "s3cret" not in text and "key.pem" not in text
    assert out["mqtt"]["password"] == "***" and out["mqtt"]["tls"]["key_file"] == "***"
    assert out["camera"]["source"] == "rtsp://***@10.0.0.5/***" and out["mqtt"]["username"] == "***"
    assert out["mqtt"]["tls"]["cert_file"] == "***"  # every CREDENTIAL_KEYS value, not only password and key
    assert redact(base())["mqtt"]["password"] is None
    # secrets no key-name rule recognises: a short query key, a token in the path, a space in the password
    for source, shown in (("rtsp://cam.local/live?usr=admin&p=s3cret", "rtsp://cam.local/***"),
                          ("https://cam.example:8443/stream/6f1d0b6cs3cret/index.m3u8", "https://cam.example:8443/***"),
                          ("rtsp://user:pa ss@10.0.0.5/x", "rtsp://***@10.0.0.5/***"), ("/dev/video0", "/dev/video0"),
                          ("rtspsrc location=rtsp://cam.local/8f3a0718s3cret/live latency=0 ! decodebin ! appsink",
                           "rtspsrc location=rtsp://cam.local/*** latency=0 ! decodebin ! appsink"),
                          ("uridecodebin uri=http://cam.local/video?p=s3cret ! videoconvert ! appsink",
                           "uridecodebin uri=http://cam.local/*** ! videoconvert ! appsink")):
        assert redact(base(camera={"source": source}))["camera"]["source"] == shown


# --- the RemoteConfig state machine: persistence, refusals, start-up ---------------------------------------------
def test_accepted_change_is_persisted_atomically_and_reverted_by_null(tmp_path: Path) -> None:
    applied: list[KioskConfig] = []
    rc = RemoteConfig(base(), tmp_path / "state")
    assert rc.body["trigger"] == "startup" and rc.body["accepted"] and rc.body["overlay"] == {}
    body = rc.handle(msg({"alerts": {"alert_threshold": 0.8, "hints": {"en": {"watch": "Look up."}}}}), applied.append)
    assert body["accepted"] and body["persisted"] and body["errors"] == []
    assert body["changed"] == ["alerts.alert_threshold", "alerts.hints.en.watch"]
    assert applied[-1].alerts.alert_threshold == 0.8 and rc.cfg is applied[-1]
    stored = json.loads((tmp_path / "state" / OVERLAY_FILE).read_text())
    assert stored["format"] == 1 and stored["overlay"] == body["overlay"]
    assert [p.name for p in (tmp_path / "state").iterdir()] == [OVERLAY_FILE]  # no temporary file left
    body = rc.handle(msg({"fusion": {"half_life_s": 3.0}}), applied.append)  # overlays accumulate
    assert body["overlay"] == {"alerts": {"alert_threshold": 0.8, "hints": {"en": {"watch": "Look up."}}},
                               "fusion": {"half_life_s": 3.0}}
    body = rc.handle(msg({"alerts": None}), applied.append)  # back to the TOML file's alerts
    assert body["overlay"] == {"fusion": {"half_life_s": 3.0}} and rc.cfg.alerts == base().alerts
    assert json.loads((tmp_path / "state" / OVERLAY_FILE).read_text())["overlay"] == body["overlay"]
    EventFactory(rc.cfg.identity).make("configstate", **body)  # schema-valid


@pytest.mark.parametrize("data", [
    b"{", b'"alerts"', msg({"camera": {"source": "0"}}), msg({"alerts": {"alert_threshold": 2}}),
    msg({"analysis": {"queue_size": 3}}), msg({"alerts": {"nope": 1}}), b"x" * (CONFIG_MAX_BYTES + 10),
])
def test_refused_message_changes_nothing(tmp_path: Path, data: bytes) -> None:
    rc = RemoteConfig(base(), tmp_path)
    rc.handle(msg({"alerts": {"alert_threshold": 0.8}}), lambda c: None)
    before, stored = rc.cfg, (tmp_path / OVERLAY_FILE).read_bytes()
    applied: list[KioskConfig] = []
    rc.receive(data)
    (body,) = rc.process(applied.append)
    assert not body["accepted"] and body["errors"] and body["changed"] == [] and applied == []
    assert rc.cfg is before and (tmp_path / OVERLAY_FILE).read_bytes() == stored and rc.rejected == 1
    assert body["overlay"] == {"alerts": {"alert_threshold": 0.8}} and body["config"] == redact(before)
    validate("configstate", EventFactory(rc.cfg.identity).make("configstate", **body))


def test_failed_apply_is_rolled_back(tmp_path: Path) -> None:
    seen: list[float] = []

    def apply(c: KioskConfig) -> None:
        seen.append(c.alerts.alert_threshold)
        if c.alerts.alert_threshold == 0.9:
            raise RuntimeError("boom")

    rc = RemoteConfig(base(), tmp_path)
    body = rc.handle(msg({"alerts": {"alert_threshold": 0.9}}), apply)
    assert not body["accepted"] and "boom" in body["errors"][0] and seen == [0.9, 0.6]
    assert rc.cfg.alerts.alert_threshold == 0.6 and not (tmp_path / OVERLAY_FILE).exists()


def test_without_state_folder_applies_but_says_not_persisted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    cfg = base()
    assert cfg.state_dir() is None
    rc = RemoteConfig(cfg, cfg.state_dir())
    body = rc.handle(msg({"fusion": {"half_life_s": 2.5}}), lambda c: None)
    assert body["accepted"] and not body["persisted"] and "not persisted" in body["note"]


def test_unwritable_state_folder_still_applies(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    rc = RemoteConfig(base(), tmp_path / "file")  # a file where the folder should be
    body = rc.handle(msg({"fusion": {"half_life_s": 2.5}}), lambda c: None)
    assert body["accepted"] and not body["persisted"] and body["note"].startswith("applied but not persisted")
    assert rc.cfg.fusion.half_life_s == 2.5


def test_startup_reapplies_or_sets_aside_the_stored_overlay(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    RemoteConfig(base(), tmp_path).handle(msg({"alerts": {"watch_threshold": 0.5, "alert_threshold": 0.7}}),
                                          lambda c: None)
    rc = RemoteConfig(base(), tmp_path)
    assert rc.cfg.alerts.alert_threshold == 0.7 and rc.body["accepted"] and rc.body["trigger"] == "startup"
    assert rc.body["persisted"] and rc.body["overlay"]["alerts"]["watch_threshold"] == 0.5
    # A newer config file whose release threshold the stored overlay now contradicts: ignored, set aside, logged.
    newer = base(alerts={"release_threshold": 0.55, "watch_threshold": 0.6, "alert_threshold": 0.8})
    rc = RemoteConfig(newer, tmp_path)
    assert rc.cfg is newer and rc.overlay == {} and not rc.body["accepted"]
    assert "thresholds must be" in rc.body["errors"][0] and "ignored" in rc.body["note"]
    assert not (tmp_path / OVERLAY_FILE).exists() and (tmp_path / (OVERLAY_FILE + ".rejected")).is_file()
    assert "no longer validates" in caplog.text
    (tmp_path / OVERLAY_FILE).write_text("{garbage")
    rc = RemoteConfig(base(), tmp_path)
    assert rc.cfg == base() and "not JSON" in rc.body["errors"][0]
    (tmp_path / OVERLAY_FILE).write_text(json.dumps({"format": 1, "overlay": {"mqtt": {"host": "x"}}}))
    assert "mqtt: not remotely changeable" in RemoteConfig(base(), tmp_path).body["errors"][0]


# --- live application to the running objects ----------------------------------------------------------------------
class _Spy:
    """A face detector that records what it was shown and reports one face at the frame's centre-right."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        self.images.append(image)
        return [FaceBox(400, 140, 160, 200, 0.9)]  # centre (480, 240) of 640x480


class _Model:
    def __init__(self) -> None:
        self.spec = SimpleNamespace(output=SimpleNamespace(shape=(1, 7)), labels=EMOTIONS)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.full((1, 7), 1.0 / 7, np.float32)


def test_apply_live_reaches_analyzers_fusion_visits_and_pause(tmp_path: Path) -> None:
    cfg = base(state={"dir": str(tmp_path)})
    det = _Spy()
    face = FaceAnalyzer(det, _Model(), customer_zone=cfg.analysis.customer_zone)  # type: ignore[arg-type]
    svc = Service(cfg, Analyzers(face=face))
    voice = VoiceAnalyzer.__new__(VoiceAnalyzer)  # the two attributes remote config sets, without a model
    voice.min_speech_ratio, voice.vad = 0.3, Vad(2)
    svc.an.voice = voice
    frame = Frame(np.full((480, 640, 3), 200, np.uint8), 0.0, 0)
    assert face.analyze(frame) is not None and det.images[-1][240, 50].tolist() == [200, 200, 200]
    body = svc.remote.handle(msg({"analysis": {"customer_zone": [0.0, 0.0, 0.5, 1.0], "face_fps": 0.25,
                                               "min_speech_ratio": 0.5, "vad_aggressiveness": 3},
                                  "privacy": {"staff_zones": [STAFF], "pause_max_s": 600},
                                  "fusion": {"half_life_s": 4.0, "visit_end_s": 5, "emit_interval_s": 2.0}}),
                             lambda c: apply_live(svc, c))
    assert body["accepted"], body["errors"]
    assert face.analyze(frame) is None  # the face's centre is now outside the customer zone
    assert det.images[-1][240, 50].tolist() == [0, 0, 0]  # staff pixels blanked before detection
    assert det.images[-1][240, 500].tolist() == [200, 200, 200]
    assert svc.core.fusion.cfg.half_life_s == 4.0 and svc.core.visits.end_s == 5 and svc.paused.max_s == 600
    assert svc.core.cfg.fusion.emit_interval_s == 2.0  # the core's emit cadence
    assert voice.min_speech_ratio == 0.5 and voice.vad.aggressiveness == 3
    assert svc.cfg.analysis.face_fps == 0.25 and svc.watchdog.stale_s >= 8.0  # the slower worker is not "stalled"
    restarted = Service(cfg, Analyzers(face=FaceAnalyzer(_Spy(), _Model())))  # type: ignore[arg-type]
    assert restarted.cfg.fusion.half_life_s == 4.0 and restarted.an.face is not None
    assert restarted.an.face.customer_zone == (0.0, 0.0, 0.5, 1.0) and restarted.an.face.staff_zones


# --- over a real broker --------------------------------------------------------------------------------------------


def _state(sub: Any, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    m = sub.wait_for(lambda m: m.topic.endswith("/configstate") and pred(json.loads(m.payload)), timeout=timeout)
    payload: dict[str, Any] = json.loads(m.payload)
    validate("configstate", payload)
    return payload


def test_remote_config_over_the_broker(mosquitto: Any, subscribe: Any, tmp_path: Path) -> None:
    cfg = parse_config({
        "identity": {"site_id": "site-r", "kiosk_id": "kiosk-r", "counter_name": "C1"},
        "fusion": {"half_life_s": 0.3, "emit_interval_s": 0.2, "visit_start_s": 0.2, "visit_end_s": 1.0},
        "alerts": {"sustain_s": 0.3, "watch_threshold": 1.0, "alert_threshold": 1.0},  # never reached
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "password": "s3cret-pw", "username": "u",
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "state": {"dir": str(tmp_path / "state")},
    })
    topic = "edge-emotion/site-r/kiosk-r/config"
    sub = subscribe(mosquitto, "edge-emotion/site-r/kiosk-r/#")
    svc = Service(cfg, Analyzers())
    runner, feeding = run_fed(svc)
    try:
        first = _state(sub, lambda p: p["trigger"] == "startup")
        assert first["accepted"] and first["config"]["mqtt"]["password"] == "***"
        sub.wait_for(lambda m: m.topic.endswith("/emotion") and b'"angry"' in m.payload, timeout=5)
        time.sleep(0.5)
        assert not any(m.topic.endswith("/alert") for m in sub.messages)  # thresholds of 1.0: no alert
        sub.client.publish(topic, msg({"alerts": {"watch_threshold": 0.4, "alert_threshold": 0.5}}), qos=1)
        state = _state(sub, lambda p: p["trigger"] == "message")
        assert state["accepted"] and state["changed"] == ["alerts.alert_threshold", "alerts.watch_threshold"]
        assert state["config"]["alerts"]["alert_threshold"] == 0.5 and state["persisted"]
        alert = sub.wait_for(lambda m: m.topic.endswith("/alert") and b'"level":"alert"' in m.payload, timeout=5)
        validate("alert", json.loads(alert.payload))  # the core now uses the new threshold
        stored = json.loads((tmp_path / "state" / OVERLAY_FILE).read_text())["overlay"]
        assert stored == {"alerts": {"watch_threshold": 0.4, "alert_threshold": 0.5}}
        for bad in (b"{oops", msg({"camera": {"source": "1"}}), msg({"alerts": {"alert_threshold": 7}})):
            sub.client.publish(topic, bad, qos=1)
        refused = _state(sub, lambda p: not p["accepted"] and "alert_threshold" in json.dumps(p["errors"]))
        assert refused["config"]["alerts"]["alert_threshold"] == 0.5  # nothing changed
        deadline = time.monotonic() + 5
        while svc.errors["config"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.errors["config"] == 3 and svc.cfg.alerts.alert_threshold == 0.5 and runner.is_alive()
        assert json.loads((tmp_path / "state" / OVERLAY_FILE).read_text())["overlay"] == stored
        assert not any(b"s3cret" in m.payload for m in sub.messages)
    finally:
        feeding.clear()
        svc.stop.set()
        runner.join(timeout=10)
    # Restart with the stored overlay: applied from the start, announced retained.
    svc2 = Service(cfg, Analyzers())
    assert svc2.cfg.alerts.alert_threshold == 0.5 and svc2.core.alerts.cfg.alert_threshold == 0.5
    late = subscribe(mosquitto, "edge-emotion/site-r/kiosk-r/#")
    retained = late.wait_for(lambda m: m.topic.endswith("/configstate"))
    assert retained.retain and not json.loads(retained.payload)["accepted"]  # the last outcome, kept by the broker
    runner, feeding = run_fed(svc2)
    try:
        again = _state(late, lambda p: p["trigger"] == "startup" and p["overlay"] == {"alerts": stored["alerts"]})
        assert again["accepted"] and again["persisted"]
        late.wait_for(lambda m: m.topic.endswith("/alert") and b'"level":"alert"' in m.payload, timeout=5)
    finally:
        feeding.clear()
        svc2.stop.set()
        runner.join(timeout=10)


def test_a_large_accepted_overlay_is_re_applied_after_restart(tmp_path: Path) -> None:
    """16 staff polygons of 64 points (~20 KB, under the message limit) are stored so that a restart reads them."""
    import math

    def poly(i: int) -> list[list[float]]:
        cx, cy = 0.1 + 0.05 * (i % 4), 0.1 + 0.2 * (i // 4 % 2)
        angles = [2 * math.pi * k / 64 for k in range(64)]
        return [[round(cx + 0.04 * math.cos(a), 6), round(cy + 0.04 * math.sin(a), 6)] for a in angles]

    data = json.dumps({"privacy": {"staff_zones": [poly(i) for i in range(16)]}}, separators=(",", ":")).encode()
    assert 14_000 < len(data) <= CONFIG_MAX_BYTES
    rc = RemoteConfig(base(), tmp_path)
    assert rc.handle(data, lambda c: None)["persisted"] and len(rc.cfg.privacy.staff_zones) == 16
    again = RemoteConfig(base(), tmp_path)
    assert again.body["accepted"] and again.body["errors"] == [] and len(again.cfg.privacy.staff_zones) == 16
    assert not (tmp_path / (OVERLAY_FILE + ".rejected")).exists()


def test_deeply_nested_message_is_refused_and_answered(tmp_path: Path) -> None:
    """A hostile nesting depth is a refusal with its own configstate, after the good message before it is answered."""
    rc = RemoteConfig(base(), tmp_path)
    deep: Any = 1
    for _ in range(600):
        deep = [deep]
    rc.receive(msg({"fusion": {"emit_interval_s": 2.0}}))
    rc.receive(msg({"alerts": {"x": deep}}))
    bodies = rc.process(lambda c: None)
    assert [b["accepted"] for b in bodies] == [True, False] and rc.rejected == 1
    assert "nested deeper" in bodies[1]["errors"][0] and rc.cfg.fusion.emit_interval_s == 2.0


def test_eu_opening_hours_may_shrink_remotely_but_not_widen_or_switch_off() -> None:
    """Outside opening hours nothing is analysed: under eu/cn a remote change may not add a single minute."""
    week = ["mon", "tue", "wed", "thu", "fri"]
    eu = base(privacy={"profile": "eu", "staff_zones": [STAFF], "notice_text": NOTICE}, analysis={"voice": False},
              schedule={"enabled": True, "timezone": "Europe/Berlin",
                        "windows": [{"days": week, "start": "09:00", "end": "17:00"}]})
    for patch in ({"schedule": {"enabled": False}},
                  {"schedule": {"windows": [{"days": [*week, "sat", "sun"], "start": "00:00", "end": "24:00"}]}},
                  {"schedule": {"timezone": "Asia/Shanghai"}}):  # the same clock hours, 7 hours earlier
        with pytest.raises(RemoteConfigError, match="opening hours may only shrink"):
            effective(eu, patch)
    # the same hours in a zone whose daylight saving starts three weeks earlier: New York 03:00-11:00 is Berlin
    # 09:00-17:00 in winter and summer, but 08:00-16:00 Berlin time from 8 to 29 March 2026
    with pytest.raises(RemoteConfigError, match="America/New_York UTC-4 .as from 08 Mar 2026"):
        effective(eu, {"schedule": {"timezone": "America/New_York",
                                    "windows": [{"days": week, "start": "03:00", "end": "11:00"}]}})
    same = effective(eu, {"schedule": {"timezone": "Europe/Paris"}})  # same offsets all year: the same hours
    assert same.schedule.timezone == "Europe/Paris"
    # the same moments in another zone whose clocks change an hour apart: the mixed offsets hold for that hour only
    ny = base(privacy={"profile": "eu", "staff_zones": [STAFF], "notice_text": NOTICE}, analysis={"voice": False},
              schedule={"enabled": True, "timezone": "America/New_York",
                        "windows": [{"days": week, "start": "09:00", "end": "17:00"}]})
    chicago = effective(ny, {"schedule": {"timezone": "America/Chicago",
                                          "windows": [{"days": week, "start": "08:00", "end": "16:00"}]}})
    assert chicago.schedule.timezone == "America/Chicago"
    narrower = effective(eu, {"schedule": {"windows": [{"days": week[:3], "start": "10:00", "end": "16:00"}]}})
    assert narrower.schedule.windows[0].start == "10:00"
    assert effective(base(), {"schedule": {"enabled": False}}).schedule.enabled is False  # custom: not a floor


def test_a_slow_face_rate_sent_remotely_can_be_reverted_and_the_watchdog_follows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The face worker re-reads ``face_fps`` while it waits: a revert after a remote 0.2 fps takes effect at once
    (it slept 1/fps unconditionally), the stall limit comes back down, and a rate below 0.2 fps is refused."""
    import threading

    import cv2


    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(60):
        w.write(np.full((120, 160, 3), i, np.uint8))
    w.release()

    class Counting:
        n = 0

        def analyze(self, frame: Frame) -> None:
            Counting.n += 1

        def configure(self, *a: object) -> None:
            pass

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                        "camera": {"source": str(path), "loop": True}, "microphone": {"enabled": False},
                        "state": {"dir": str(tmp_path / "state")}})
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")  # systemd's 4 s: the stall limit's floor is 2 s, not 15
    svc = Service(cfg, Analyzers(face=Counting()))  # type: ignore[arg-type]
    base_stale = svc.watchdog.stale_s
    assert base_stale == 2.0
    th = threading.Thread(target=svc.run, daemon=True)
    th.start()
    try:
        assert not svc.remote.handle(msg({"analysis": {"face_fps": 0.1}}), lambda c: None)["accepted"]
        svc.handle_message(svc.config_topic, json.dumps({"analysis": {"face_fps": 0.2}}).encode())
        until(lambda: svc.cfg.analysis.face_fps == 0.2, 5, "the slow rate to apply")
        time.sleep(1.0)
        assert svc.watchdog.stale_s == 10.0  # two turns at 0.2 fps
        n0 = Counting.n
        svc.handle_message(svc.config_topic, json.dumps({"analysis": {"face_fps": None}}).encode())
        until(lambda: svc.cfg.analysis.face_fps == 8.0, 5, "the revert to apply")
        until(lambda: Counting.n - n0 >= 4, 2.5, "analyses after the revert (the worker slept the slow rate's turn)")
        assert svc.watchdog.stale_s == base_stale
    finally:
        svc.stop.set()
        th.join(5)
