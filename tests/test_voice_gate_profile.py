"""Issue 23, item 3: eu refuses voice analysis without a staff-voice gate, cn warns; remote config only tightens it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import parse_config
from edge.privacy.floor import weakened

NOTICE = ('notice_text = { en = "Emotion sensing at this counter; nothing is recorded.", '
          'zh-CN = "本柜台使用情绪感知设备，仅在本机处理，不录像、不录音。" }')
BASE = ('[identity]\nsite_id = "s"\nkiosk_id = "k"\n'
        '[privacy]\nprofile = "{profile}"\nstaff_zones = [[[0, 0], [0.3, 0], [0.3, 1], [0, 1]]]\n' + NOTICE + "\n")


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, extra: str = "",
           privacy: str = "") -> tuple[int, str]:
    f = tmp_path / "k.toml"
    text = BASE.replace("{profile}", profile)
    text = text.replace("[privacy]\n", "[privacy]\n" + privacy) + extra
    f.write_text(text, encoding="utf-8")
    rc = main(["check-config", str(f), "--no-models"])
    return rc, capsys.readouterr().err


def test_eu_refuses_voice_analysis_without_a_staff_voice_gate(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _check(tmp_path, capsys, "eu")
    assert rc == 2 and "privacy.staff_voice_gate: the eu profile requires a staff-voice gate" in err
    assert _check(tmp_path, capsys, "eu", "[analysis]\nvoice = false\n")[0] == 0
    assert _check(tmp_path, capsys, "eu", "[microphone]\nenabled = false\n")[0] == 0
    rc, err = _check(tmp_path, capsys, "eu", "[microphone]\nchannels = 2\n", "staff_audio_channel = 1\n")
    assert rc == 0 and "warning" not in err
    rc, err = _check(tmp_path, capsys, "eu", "", "staff_audio_channel = 1\n")  # the staff channel is not captured
    assert rc == 2 and "privacy.staff_audio_channel: channel 1 is not captured (microphone.channels = 1" in err
    rc, err = _check(tmp_path, capsys, "eu", "[microphone]\nchannels = 2\n", 'staff_voice_gate = "none"\n')
    assert rc == 2 and "the eu profile requires a staff-voice gate" in err


def test_cn_warns_without_a_gate_and_custom_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _check(tmp_path, capsys, "cn")
    assert rc == 0 and "warning: privacy.staff_voice_gate: no staff-voice gate while voice is analysed" in err
    rc, err = _check(tmp_path, capsys, "cn", "[microphone]\nchannels = 2\n", "staff_audio_channel = 0\n")
    assert rc == 0 and "warning" not in err
    rc, err = _check(tmp_path, capsys, "custom")
    assert rc == 0 and "warning" not in err
    f = tmp_path / "nozone.toml"  # cn without a staff zone: its signage says the staff side is masked
    f.write_text(BASE.replace("{profile}", "cn").replace("staff_zones = [[[0, 0], [0.3, 0], [0.3, 1], [0, 1]]]\n", "")
                 + "[analysis]\nvoice = false\n", encoding="utf-8")
    assert main(["check-config", str(f), "--no-models"]) == 0
    assert "warning: privacy.staff_zones: none under the cn profile" in capsys.readouterr().err


def test_eu_and_cn_refuse_gate_thresholds_that_let_staff_through(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A share of 1.0 / 0.0 made the required gate a gate in name only (it could never call a window staff)."""
    gate = "[microphone]\nchannels = 2\n"
    for profile in ("eu", "cn"):
        rc, err = _check(tmp_path, capsys, profile, gate, "staff_audio_channel = 1\nstaff_voice_max_share = 1.0\n"
                         "customer_voice_min_share = 0.0\nstaff_voice_margin_db = 40\n")
        assert rc == 2 and f"privacy.staff_voice_max_share: the {profile} profile requires <= 0.25" in err
        assert "privacy.customer_voice_min_share: " in err and "privacy.staff_voice_margin_db: " in err
    rc, err = _check(tmp_path, capsys, "custom", gate, "staff_audio_channel = 1\nstaff_voice_max_share = 1.0\n")
    assert rc == 0


def test_auto_takes_the_direction_gate_when_one_is_described(tmp_path: Path) -> None:
    """``[privacy.direction]`` under the default ``staff_voice_gate = "auto"`` was silently ignored (staff voices
    went to the model ungated); a direction set beside another gate is an error."""
    from edge.voicegate.gate import DirectionGate, make_gate

    direction = {"mic_positions_m": [[0, 0], [0.05, 0]], "staff_sector_deg": [0, 60], "customer_sector_deg": [120, 180]}
    data = {"identity": {"site_id": "s", "kiosk_id": "k"}, "microphone": {"channels": 2},
            "privacy": {"direction": direction}}
    assert isinstance(make_gate(parse_config(data)), DirectionGate)
    from edge.config import ConfigError

    with pytest.raises(ConfigError, match="privacy.direction: set, but the gate in force is 'none'"):
        parse_config({**data, "privacy": {"direction": direction, "staff_voice_gate": "none"}})


def test_remote_config_may_only_tighten_the_gate_under_every_profile() -> None:
    data = {"identity": {"site_id": "s", "kiosk_id": "k"}, "microphone": {"channels": 2},
            "privacy": {"profile": "eu", "staff_zones": [[[0, 0], [0.3, 0], [0.3, 1], [0, 1]]],
                        "notice_text": {"en": "Emotion sensing at this counter; nothing is recorded."},
                        "staff_audio_channel": 1, "staff_voice_max_share": 0.1, "customer_voice_min_share": 0.5}}
    base = parse_config(data)

    def with_privacy(**p: float) -> list[str]:
        return weakened(base, parse_config({**data, "privacy": {**data["privacy"], **p}}))  # type: ignore[dict-item]

    assert with_privacy(staff_voice_max_share=0.05, customer_voice_min_share=0.7, staff_voice_margin_db=2.0) == []
    got = with_privacy(staff_voice_max_share=0.2, customer_voice_min_share=0.4, staff_voice_margin_db=4.0)
    assert [g.split(":")[0] for g in got] == ["privacy.staff_voice_margin_db", "privacy.staff_voice_max_share",
                                              "privacy.customer_voice_min_share"]
    custom = parse_config({**data, "privacy": {**data["privacy"], "profile": "custom"}})  # type: ignore[dict-item]
    loose = weakened(custom, parse_config({**data, "privacy": {**data["privacy"], "profile": "custom",  # type: ignore[dict-item]
                                                             "staff_voice_max_share": 0.9}}))
    assert [g.split(":")[0] for g in loose] == ["privacy.staff_voice_max_share"]  # every profile: only tighten


def test_loose_gate_thresholds_are_warned_about_and_the_report_does_not_quote_the_benchmark() -> None:
    """Under custom, shares of 1.0 / 0.0 make the gate pass everything, yet the report kept saying overlapping and
    unclear windows are dropped and quoted the benchmark's 0.0 % leak, and nothing warned."""
    from edge.privacy.report import voice_gate_line

    data = {"identity": {"site_id": "s", "kiosk_id": "k"}, "microphone": {"channels": 2},
            "privacy": {"staff_audio_channel": 1, "staff_voice_max_share": 1.0, "customer_voice_min_share": 0.0}}
    cfg = parse_config(data)
    assert any(w.startswith("privacy: staff_voice_max_share = 1") for w in cfg.warnings())
    line = voice_gate_line(cfg)
    assert "staff-only windows can reach the voice model" in line and "do not apply to it" in line
    assert "Measured in" not in line
    default = parse_config({**data, "privacy": {"staff_audio_channel": 1}})
    assert not any(w.startswith("privacy: staff_voice") for w in default.warnings())
    assert "are dropped before the voice model" in voice_gate_line(default)
