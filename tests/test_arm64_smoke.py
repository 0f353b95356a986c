"""scripts/arm64-smoke (issue 25): its comparisons and the board description it writes, without QEMU or a network.

The smoke run itself takes 30-60 min under emulation and is not part of the test suite (docs/bench/arm64_smoke.md).
"""

from __future__ import annotations

import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "arm64-smoke"


@pytest.fixture(scope="module")
def smoke() -> ModuleType:
    loader = SourceFileLoader("arm64_smoke", str(SCRIPT))
    spec = spec_from_loader("arm64_smoke", loader)
    assert spec is not None
    mod = module_from_spec(spec)
    sys.modules["arm64_smoke"] = mod
    loader.exec_module(mod)
    return mod


def _emotion(t: float, label: str = "neutral", esc: float = 0.1, voice: float = 0.0, **probs: float) -> dict[str, Any]:
    p = {"neutral": 0.6, "happy": 0.1, "surprise": 0.0, "sad": 0.2, "angry": 0.05, "disgust": 0.05, "fear": 0.0}
    p.update(probs)
    return {"schema": "edge-emotion/emotion/1", "ts": f"2026-12-03T10:00:{t:06.3f}Z", "label": label, "probs": p,
            "valence": 0.0, "arousal": 0.0, "escalation": esc, "confidence": 0.3,
            "modalities": {"face": {"confidence": 0.5}, "voice": {"confidence": voice}}}


def _visit(t: float, phase: str) -> dict[str, Any]:
    return {"schema": "edge-emotion/visit/1", "ts": f"2026-12-03T10:00:{t:06.3f}Z", "phase": phase}


def _alert(t: float, level: str, reason: str) -> dict[str, Any]:
    return {"schema": "edge-emotion/alert/1", "ts": f"2026-12-03T10:00:{t:06.3f}Z", "level": level, "reason": reason}


def test_timeline_is_media_time_from_the_first_event(smoke: ModuleType) -> None:
    """The wall clock a replay starts at cancels out: offsets from the first event, in ms."""
    events = [_emotion(1.0), _visit(2.0, "start"), _alert(2.25, "watch", "rising"), _emotion(2.0)]
    assert smoke.timeline(events) == [("emotion", "neutral", 0), ("visit", "start", 1000),
                                      ("alert", "watch/rising", 1250), ("emotion", "neutral", 1000)]
    shifted = [{**e, "ts": e["ts"].replace("10:00:", "11:00:")} for e in events]
    assert smoke.skeleton(shifted) == smoke.skeleton(events)
    assert smoke.alerts(events) == ["watch/rising at 1.25 s"]


def test_skeleton_ignores_labels_and_alerts_but_not_visits(smoke: ModuleType) -> None:
    """Labels and alerts are decisions (reported); emotion times and visits must match."""
    ref = [_emotion(1.0), _visit(2.0, "start"), _emotion(2.0)]
    other = [_emotion(1.0, label="sad"), _visit(2.0, "start"), _alert(2.1, "watch", "rising"), _emotion(2.0)]
    assert smoke.skeleton(other) == smoke.skeleton(ref)
    assert smoke.skeleton([_emotion(1.0), _visit(2.5, "start"), _emotion(2.0)]) != smoke.skeleton(ref)
    assert smoke.skeleton([_emotion(1.0), _emotion(2.0)]) != smoke.skeleton(ref)


def test_reading_differences_and_label_flips(smoke: ModuleType) -> None:
    """Max abs difference per reading over paired emotion events; a flipped label names the reference's margin."""
    ref = [_emotion(1.0, esc=0.40), _visit(1.5, "start"), _emotion(2.0, voice=0.30, neutral=0.45, sad=0.40)]
    arm = [_emotion(1.0, esc=0.43), _visit(1.5, "start"),
           _emotion(2.0, label="sad", voice=0.32, neutral=0.42, sad=0.43)]
    diffs = smoke.reading_diffs(ref, arm)
    assert diffs["escalation"] == pytest.approx(0.03)
    assert diffs["probs"] == pytest.approx(0.03)
    assert diffs["voice confidence"] == pytest.approx(0.02)
    assert diffs["face confidence"] == 0.0
    assert smoke.label_flips(ref, arm) == ["event 1: neutral → sad (x86-64 top-two margin 0.050)"]


def test_model_differences_in_quantization_steps(smoke: ModuleType) -> None:
    """int8 outputs are also given in steps of their scale; a model missing on one side is an infinite difference."""
    scale = 1 / 256
    a = {"m": {"output_scale": scale, "outputs": [[[0.5, 0.25]], [[0.0, 1.0]]]},
         "f": {"output_scale": None, "outputs": [[[1.0]]]}, "gone": {"output_scale": None, "outputs": []}}
    b = {"m": {"output_scale": scale, "outputs": [[[0.5 + 3 * scale, 0.25]], [[0.0, 1.0]]]},
         "f": {"output_scale": None, "outputs": [[[1.00002]]]}}
    d = smoke.probe_diffs(a, b)
    assert d["m"]["steps"] == 3 and d["m"]["max_abs"] == pytest.approx(3 * scale)
    assert d["f"]["steps"] is None and d["f"]["max_abs"] == pytest.approx(2e-5)
    assert d["gone"]["max_abs"] == float("inf")


def test_board_description_for_xnnpack(smoke: ModuleType, tmp_path: Path) -> None:
    """A Pi 4 / Pi 5 /proc/cpuinfo and /sys CPU lists in the root; None removes them (XNNPACK off)."""
    smoke.describe_cpu(tmp_path, "cortex-a76")
    cpuinfo = (tmp_path / "proc/cpuinfo").read_text(encoding="utf-8")
    assert cpuinfo.count("CPU part\t: 0xd0b") == 4 and "asimddp" in cpuinfo and "Raspberry Pi 5" in cpuinfo
    assert (tmp_path / "sys/devices/system/cpu/possible").read_text(encoding="utf-8") == "0-3\n"
    smoke.describe_cpu(tmp_path, "cortex-a72")
    assert "0xd08" in (tmp_path / "proc/cpuinfo").read_text(encoding="utf-8")
    smoke.describe_cpu(tmp_path, None)
    assert not (tmp_path / "proc/cpuinfo").exists() and not (tmp_path / "sys/devices/system/cpu").exists()


def test_refuses_without_root(smoke: ModuleType, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """debootstrap and chroot need root: exit 2 with the reason, before touching anything."""
    monkeypatch.setattr(smoke.os, "geteuid", lambda: 1000)
    assert smoke.main(["--work", "/nonexistent/arm64-smoke"]) == 2
    assert "needs root" in capsys.readouterr().err
