"""Remote config cannot talk a kiosk out of its privacy rules (issue 20, item 2).

The service process under the eu profile and a real mosquitto: the field report's patches are refused by key path
and change nothing (not applied, not persisted); a patch that tightens is accepted; a stored overlay that loosens
the TOML file is set aside at start-up. Unit checks of the rules themselves are in tests/test_privacy.py and the
property test in tests/test_fuzz.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from kiosk_proc import Kiosk, write_toml

from edge.demo.media import make_demo
from edge.events import validate
from edge.transport.remote_config import OVERLAY_FILE

SITE, KIOSK = "site-q", "kiosk-q"
BASE = f"edge-emotion/{SITE}/{KIOSK}"
STAFF = [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]]
NOTICE = "Emotion sensing at this counter: estimated on this device only. Ask staff to pause it."
# What the field report got accepted and persisted under the eu profile, and the key each must be refused by.
WEAKENING: list[tuple[dict[str, Any], str]] = [
    ({"privacy": {"staff_zones": [[[0.999, 0.999], [1, 0.999], [1, 1]]]}, "analysis": {"customer_zone": [0, 0, 1, 1]}},
     "privacy.staff_zones.0: Value error, degenerate polygon"),
    ({"privacy": {"staff_zones": [[[0, 0], [0, 0], [0, 0]]]}}, "privacy.staff_zones.0: Value error, degenerate"),
    ({"privacy": {"staff_zones": [[[0, 0], [0.1, 0], [0.1, 0.1], [0, 0.1]]]}}, "privacy.staff_zones: a remote"),
    ({"analysis": {"customer_zone": [0, 0, 1, 1]}}, "analysis.customer_zone: a remote change may only"),
    ({"privacy": {"pause_max_s": 10}}, "privacy.pause_max_s: the eu profile requires >= 300"),
    ({"privacy": {"pause_max_s": 400}}, "privacy.pause_max_s: a remote change may only"),
    ({"analysis": {"min_face_frac": 0}}, "analysis.min_face_frac: the eu profile requires >= 0.05"),
    ({"analysis": {"min_face_frac": 0.08}}, "analysis.min_face_frac: a remote change may only"),
    ({"privacy": {"staff_voice_max_share": 0.2}}, "privacy.staff_voice_max_share: a remote change"),  # issue 23
    ({"privacy": {"staff_voice_margin_db": 4}}, "privacy.staff_voice_margin_db: a remote change may only"),
    ({"privacy": {"customer_voice_min_share": 0.4}}, "privacy.customer_voice_min_share: a remote change may only"),
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo(tmp_path_factory.mktemp("media"), seconds=6.0)


def _config(path: Path, broker: Broker, media: tuple[Path, Path], state: Path) -> Path:
    return write_toml(path, {
        "identity": {"site_id": SITE, "kiosk_id": KIOSK},
        "camera": {"source": str(media[0]), "loop": True},
        "microphone": {"source": str(media[1]), "loop": True},
        "analysis": {"customer_zone": [0.3, 0.0, 1.0, 1.0], "min_face_frac": 0.1, "voice": False},  # eu: no gate
        "mqtt": {"host": broker.host, "port": broker.port, "health_interval_s": 1.0},
        "state": {"dir": str(state)},
        "privacy": {"profile": "eu", "staff_zones": [STAFF], "pause_max_s": 600.0},
        "privacy.notice_text": {"en": NOTICE}})


def _states(sub: Any) -> list[dict[str, Any]]:
    out = [json.loads(m.payload) for m in sub.messages if m.topic == f"{BASE}/configstate"]
    for p in out:
        validate("configstate", p)
    return out


def test_remote_changes_may_only_tighten_privacy_under_eu(mosquitto: Broker, subscribe: Any,
                                                          media: tuple[Path, Path], tmp_path: Path) -> None:
    state = tmp_path / "state"
    sub = subscribe(mosquitto, f"{BASE}/#")
    kiosk = Kiosk(_config(tmp_path / "k.toml", mosquitto, media, state), tmp_path / "kiosk.log")
    try:
        sub.wait_for(lambda m: m.topic == f"{BASE}/configstate", timeout=60)
        for i, (patch, why) in enumerate(WEAKENING):
            sub.client.publish(f"{BASE}/config", json.dumps(patch).encode(), qos=1)
            sub.wait_for(lambda m, n=i + 2: len(_states(sub)) >= n, timeout=10)
            last = _states(sub)[-1]
            assert not last["accepted"] and any(e.startswith(why) for e in last["errors"]), (patch, last["errors"])
            assert last["overlay"] == {} and last["config"]["privacy"]["staff_zones"] == [STAFF]
            assert last["config"]["analysis"]["min_face_frac"] == 0.1
        assert not (state / OVERLAY_FILE).exists(), "a refused change was persisted"
        wider = [[0.0, 0.0], [0.35, 0.0], [0.35, 1.0], [0.0, 1.0]]
        tighter = {"privacy": {"staff_zones": [wider], "pause_max_s": 900},
                   "analysis": {"customer_zone": [0.4, 0.1, 1.0, 1.0], "min_face_frac": 0.12}}
        sub.client.publish(f"{BASE}/config", json.dumps(tighter).encode(), qos=1)
        sub.wait_for(lambda m: len(_states(sub)) >= len(WEAKENING) + 2, timeout=10)
        ok = _states(sub)[-1]
        assert ok["accepted"], ok["errors"]
        assert ok["config"]["privacy"]["staff_zones"] == [wider] and ok["config"]["analysis"]["min_face_frac"] == 0.12
        assert json.loads((state / OVERLAY_FILE).read_text())["overlay"] == tighter
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]


def test_stored_overlay_that_loosens_the_file_is_set_aside(mosquitto: Broker, subscribe: Any,
                                                          media: tuple[Path, Path], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    loose = {"privacy": {"staff_zones": [[[0.9, 0.9], [1, 0.9], [1, 1], [0.9, 1]]]}}
    (state / OVERLAY_FILE).write_text(json.dumps({"format": 1, "saved_at": "2026-01-01T00:00:00.000Z",
                                                  "overlay": loose}))
    sub = subscribe(mosquitto, f"{BASE}/#")
    kiosk = Kiosk(_config(tmp_path / "k.toml", mosquitto, media, state), tmp_path / "kiosk.log")
    try:
        m = sub.wait_for(lambda m: m.topic == f"{BASE}/configstate", timeout=60)
        body = json.loads(m.payload)
        assert body["trigger"] == "startup" and not body["accepted"], body
        assert any(e.startswith("privacy.staff_zones: a remote change may only tighten") for e in body["errors"])
        assert body["config"]["privacy"]["staff_zones"] == [STAFF]
        assert (state / (OVERLAY_FILE + ".rejected")).exists() and not (state / OVERLAY_FILE).exists()
    finally:
        assert kiosk.stop() == 0, kiosk.text()[-3000:]


def test_remote_changes_may_only_tighten_privacy_under_the_custom_profile_too() -> None:
    """Under `custom` (the default) one config message could remove every staff zone, let bystanders' small faces
    in, open the staff-voice gate, shorten the opt-out, switch voice on and emit per-frame states: nothing remote may
    weaken the file's privacy settings, whatever the profile."""
    from edge.config import parse_config
    from edge.transport.remote_config import RemoteConfigError, effective

    staff = [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]]
    base = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "analysis": {"voice": False},
                         "fusion": {"emit_interval_s": 2.0, "half_life_s": 2.0},
                         "privacy": {"staff_zones": [staff]}})
    with pytest.raises(RemoteConfigError) as exc:
        effective(base, {"privacy": {"staff_zones": [], "staff_voice_max_share": 1.0, "pause_max_s": 10},
                         "analysis": {"min_face_frac": 0.0, "voice": True, "face_fps": 30, "voice_hop_s": 0.1},
                         "fusion": {"emit_interval_s": 0.2, "half_life_s": 0.5, "visit_end_s": 600}})
    keys = sorted(e.split(":")[0] for e in exc.value.errors)
    assert keys == ["analysis.face_fps", "analysis.min_face_frac", "analysis.voice", "analysis.voice_hop_s",
                    "fusion.emit_interval_s", "fusion.half_life_s", "fusion.visit_end_s", "privacy.pause_max_s",
                    "privacy.staff_voice_max_share", "privacy.staff_zones"], keys
    slower = effective(base, {"analysis": {"face_fps": 4}, "fusion": {"visit_end_s": 4}})  # less analysis: fine
    assert slower.analysis.face_fps == 4 and slower.fusion.visit_end_s == 4
    tighter = effective(base, {"privacy": {"pause_max_s": 900}, "fusion": {"emit_interval_s": 5.0}})
    assert tighter.privacy.pause_max_s == 900 and tighter.fusion.emit_interval_s == 5.0
