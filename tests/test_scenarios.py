"""Scenario replays: CREMA-D clips concatenated into a customer visit and replayed through the real int8 models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from edge.capture.media import iter_video_file
from edge.config import KioskConfig, parse_config
from edge.demo.scenario import (
    DATA_DIR,
    ScenarioError,
    ScenarioRun,
    build_scenario,
    parse_spec,
    record_scenario,
    replay_scenario,
)

AV = DATA_DIR / "av" / "crema-d"
needs_data = pytest.mark.skipif(not (AV / "1001_DFA_NEU_XX.mp4").is_file(),
                                reason=f"CREMA-D audio-visual fixtures not found in {AV} (../shared/data is absent)")


def test_data_dir_is_shared_data_beside_the_project() -> None:
    """DATA_DIR follows the module's place in the tree (a move once put it inside the project: every test skipped)."""
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    assert beside == DATA_DIR


def _cfg(**alerts: Any) -> KioskConfig:
    return parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                         "alerts": alerts})


@pytest.fixture(scope="module")
def analyzers() -> Any:
    from edge.pipeline.analyzers import build_analyzers

    return build_analyzers(_cfg())


def _run(spec: str, tmp: Path, analyzers: Any, cfg: KioskConfig | None = None) -> ScenarioRun:
    return replay_scenario(build_scenario(spec, tmp), cfg or _cfg(), analyzers)


@pytest.fixture(scope="module")
def angry_run(analyzers: Any, tmp_path_factory: pytest.TempPathFactory) -> ScenarioRun:
    """neutral → angry → neutral with default settings, replayed once for the tests below."""
    return _run("NEU*5,ANG*8,NEU*8", tmp_path_factory.mktemp("angry"), analyzers)


def test_parse_spec() -> None:
    """Codes with optional repeat counts; every malformed item is named in the error."""
    assert parse_spec("NEU*5, ang*8 ,NEU") == [("NEU", 5), ("ANG", 8), ("NEU", 1)]
    for bad in ("", "XYZ*2", "NEU*0", "NEU*x", "NEU**2"):
        with pytest.raises(ScenarioError) as exc:
            parse_spec(bad)
        assert "scenario" in str(exc.value)


def test_missing_clip_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        build_scenario("NEU", tmp_path / "out", data_dir=tmp_path)


@needs_data
def test_bad_voice_or_face_is_a_clear_error(tmp_path: Path) -> None:
    """An unknown face code or a voice actor without staged clips is named in the error."""
    with pytest.raises(ScenarioError, match="face 'XYZ'"):
        build_scenario("NEU", tmp_path, face="XYZ")
    with pytest.raises(ScenarioError, match="voice '9999', clip NEU: .*9999_DFA_NEU_XX.flac not found"):
        build_scenario("NEU", tmp_path, voice="9999")


@needs_data
def test_built_media_follow_the_timeline(tmp_path: Path) -> None:
    """Video frames and audio samples line up with the segment list; segments are contiguous."""
    sc = build_scenario("NEU*2,ANG*3,NEU", tmp_path)
    assert [s.label for s in sc.segments] == ["NEU", "NEU", "ANG", "ANG", "ANG", "NEU"]
    assert sc.segments[0].start_s == 0.0
    for a, b in zip(sc.segments, sc.segments[1:], strict=False):
        assert a.end_s == pytest.approx(b.start_s, abs=1e-3) and a.end_s > a.start_s
    frames = sum(1 for _ in iter_video_file(sc.video))
    assert frames / sc.fps == pytest.approx(sc.duration_s, abs=1e-6)
    audio, rate = sf.read(str(sc.audio))
    assert rate == 16000 and audio.size / rate == pytest.approx(sc.duration_s, abs=1e-3)
    assert np.abs(audio).max() > 0.05  # real speech, not padding
    assert sc.first_start(["ANG"]) == pytest.approx(sc.segments[2].start_s)


CREMA_1001_VOICE = ("voice model 0.2.4 reads CREMA-D actor 1001's speech as agitated throughout (voice escalation "
                    "0.57 on his neutral clip, 0.75 on his happy one, in the alert benchmark's clip readings; 0.2.3: "
                    "0.61 and 0.80; 0.2.2: 0.43 and 0.69; 0.1 CNN 0.15 on the service's clip path): a speaker-level "
                    "offset on a corpus it never heard (models/README.md, docs/bench/alerts.md)")


@needs_data
# NEU*10 (CREMA-D 1001's calm visit) watched with voice 0.2.3 and 0.2.0-0.2.1; nothing with 0.2.2 and since 0.2.4
@pytest.mark.parametrize("spec", ["NEU*10", "HAP*10"])
def test_calm_scenarios_raise_nothing(spec: str, tmp_path: Path, analyzers: Any) -> None:
    """~20 s of a neutral (or happy) customer with default settings: a visit, emotion events, no watch/alert."""
    run = _run(spec, tmp_path, analyzers)
    assert len(run.visits) == 1 and len(run.escalation) >= 15
    assert run.alerts == [], run.summary()


@needs_data
@pytest.mark.xfail(strict=True, reason="re-checked with face 0.3.0 and voice 0.2.4 (2026-12-05 night): it alerts 2.2 s "
                   "after the anger starts (voice 0.2.3: 1.9 s, 0.2.2: 4.2 s) but never recovers: " + CREMA_1001_VOICE
                   + ", and the "
                   "escalation after the anger stays above the release threshold 0.3; the face still reads his mild "
                   "anger as calm (median agitated mass per frame 0.06, no frame at the watch level). Under 0.1 "
                   "models it did not alert (peak 0.46)")
def test_angry_scenario_alerts_with_default_settings(angry_run: ScenarioRun) -> None:
    """The issue's target: neutral → angry → neutral raises an alert, then `recovered`."""
    run = angry_run
    assert run.first("alert") is not None and run.first("recovered") is not None, run.summary()


@needs_data
def test_anger_raises_escalation_over_neutral(angry_run: ScenarioRun) -> None:
    """What the models do support: the fused escalation in the angry stretch is above the neutral lead-in's."""
    run = angry_run
    start = run.scenario.first_start(["ANG"])
    end = max(s.end_s for s in run.scenario.segments if s.label == "ANG")
    assert start is not None
    calm = [e for t, e, _ in run.escalation if 2.0 <= t < start]
    angry = [e for t, e, _ in run.escalation if start + 4.0 <= t <= end]
    assert calm and angry
    assert np.mean(angry) > 1.3 * np.mean(calm), (np.mean(calm), np.mean(angry))


@needs_data
def test_angry_voice_behind_a_calm_face_alerts(tmp_path: Path, analyzers: Any) -> None:
    """Default settings, real media: actor 1001's neutral face over actor 1002's neutral → angry → neutral voice
    (CREMA-D). The fused escalation follows the voice (a calm face does not cancel it): watch → alert with a hint
    and the visit id during the anger (recovery: the next test); the same face and voice kept neutral stay quiet;
    with the voice rule switched off the calm face holds the escalation lower and below the alert."""
    sc = build_scenario("NEU*3,ANG*6,NEU*8", tmp_path / "v", voice="1002", face="NEU")
    run = replay_scenario(sc, _cfg(), analyzers)
    start = sc.first_start(["ANG"])
    ang_end = max(s.end_s for s in sc.segments if s.label == "ANG")
    first, alert = run.first("watch") or run.first("alert"), run.first("alert")
    assert start is not None and first is not None and alert is not None, run.summary()
    assert start < first["media_t"] <= alert["media_t"] <= ang_end + 2.0  # the voice window trails by up to 2 s
    assert alert["reason"] == "voice_agitation" and alert["evidence"]["modalities"] == ["voice"]
    assert alert["hint"]["text"] and alert["visit_id"] == run.visits[0] and len(run.visits) == 1
    assert not [a for a in run.alerts if a["media_t"] < start], run.summary()
    calm = build_scenario("NEU*17", tmp_path / "c", voice="1002", face="NEU")
    assert replay_scenario(calm, _cfg(), analyzers).alerts == []
    rec = record_scenario(sc, _cfg(), analyzers)  # the bench's way: analyse once, replay the Core per setting
    again = replay_scenario(sc, _cfg(), recorded=rec)
    assert [(a["level"], a["reason"], a["media_t"]) for a in again.alerts] == \
        [(a["level"], a["reason"], a["media_t"]) for a in run.alerts]
    assert [t for t, _, _ in again.escalation] == [t for t, _, _ in run.escalation] and len(again.visits) == 1
    # webrtcvad adapts to what it heard before: a second pass over the same audio with the shared analyzers
    # gets a few windows' speech ratio (and so voice confidence) slightly different
    assert np.allclose(np.array(again.escalation), np.array(run.escalation), atol=0.01)
    off = _cfg()
    off.fusion.voice_arousal = False
    off_run = replay_scenario(sc, off, recorded=rec)  # without the voice rule the calm face holds it lower
    assert off_run.first("alert") is None and off_run.summary()["peak_escalation"] < run.summary()["peak_escalation"]


@needs_data
def test_angry_voice_behind_a_calm_face_recovers(tmp_path: Path, analyzers: Any) -> None:
    """After the anger, the neutral tail ends the episode with `recovered`, in the same visit."""
    sc = build_scenario("NEU*3,ANG*6,NEU*8", tmp_path / "v", voice="1002", face="NEU")
    run = replay_scenario(sc, _cfg(), analyzers)
    ang_end = max(s.end_s for s in sc.segments if s.label == "ANG")
    recovered = run.first("recovered")
    assert recovered is not None and recovered["media_t"] > ang_end, run.summary()
    assert recovered["visit_id"] == run.visits[0]


@needs_data
def test_cli_builds_and_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    assert main(["scenario", "NEU*3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scenario:" in out and '"n_alert": 0' in out
    assert (tmp_path / "run.json").is_file() and (tmp_path / "scenario.json").is_file()
    assert main(["scenario", "BAD*3", "--out", str(tmp_path)]) == 2
