"""Smoke versions of the benchmark suite and the soak (the long versions are documented commands, not CI)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edge.bench.alerts import _poisson_upper, synthetic_floor
from edge.bench.common import pct
from edge.bench.soak import drift
from edge.bench.stages import STAGES
from edge.cli import main
from edge.demo.scenario import DATA_DIR

needs_broker = pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                                  reason="mosquitto is not installed (apt-get install mosquitto)")


def test_helpers() -> None:
    """Percentiles, RSS drift as slope × span, and the Poisson upper bound used for false alerts per hour."""
    assert pct([])["n"] == 0
    p = pct([float(i) for i in range(1, 101)])
    assert p["p50"] == pytest.approx(50.5) and p["p95"] == pytest.approx(95.05) and p["n"] == 100
    assert drift([0.0, 1.0], [1.0, 2.0]) is None
    assert drift([0.0, 60.0, 120.0, 180.0], [100.0, 101.0, 102.0, 103.0]) == pytest.approx(3.0)
    assert drift([0.0, 60.0, 120.0], [100.0, 100.0, 100.0]) == pytest.approx(0.0)
    assert _poisson_upper(0) == pytest.approx(-math.log(0.05), abs=1e-3)  # 2.996
    assert 4.7 < _poisson_upper(1) < 4.8
    assert 143.9 < _poisson_upper(124) < 144.0  # chi2.ppf(0.95, 250) / 2 = 143.94; mu ** i overflowed here


def test_the_median_time_to_alert_counts_a_speaker_who_never_alerts_as_never() -> None:
    """Over those who alerted only, a run where 2 of 5 never alert looked as fast as one where all do."""
    from edge.bench.alerts import median_with_misses

    assert median_with_misses([2.0, 2.5, 3.0, None, None]) == 3.0  # was 2.5
    assert median_with_misses([2.0, None, None]) is None  # over half never alert: no median to report
    assert median_with_misses([]) is None and median_with_misses([1.0, 2.0]) == 1.5


@pytest.mark.skipif(not (DATA_DIR / "face" / "fer2013" / "fer2013.npz").is_file(),
                    reason=f"FER2013 not found in {DATA_DIR} (../shared/data is absent)")
def test_calm_material_is_neutral_or_happy_and_held_out() -> None:
    """The false-alert material: calm speech behind two kinds of faces, then silent held-out FER faces."""
    import numpy as np

    from edge.bench.calm import calm_sets, face_clip, fer_faces
    from edge.eval.face_data import private_rows
    from edge.types import EMOTIONS

    faces = fer_faces()
    usage = np.load(DATA_DIR / "face" / "fer2013" / "fer2013.npz")["usage"]
    assert len(faces["NEU"]) > 500 and len(faces["HAP"]) > 500
    assert {str(usage[row]) for code in faces for row, _ in faces[code]} == {"PrivateTest"}
    _, fer = private_rows(DATA_DIR)  # the face evaluation's FER+ majority (training's rule) picks them
    assert {EMOTIONS[fer["major"][row]] for row, _ in faces["NEU"]} == {"neutral"}
    assert {EMOTIONS[fer["major"][row]] for row, _ in faces["HAP"]} == {"happy"}
    clip = face_clip(*faces["NEU"][0])
    assert clip.fps == 15.0 and clip.frames[0].shape == (360, 480, 3) and clip.audio.size == 0
    assert not np.array_equal(clip.frames[0], clip.frames[7])  # it sways, with sensor noise
    sets = list(calm_sets(silent_visits=4))
    names = [s for s, _, _ in sets]
    assert names.count("speech, CREMA-D face") == names.count("speech, FER faces") >= 20
    from edge.bench.calm import held_out_speakers, is_unseen

    held = held_out_speakers()  # only speakers the shipped voice model never heard speak in the calm material
    assert all(is_unseen(*v.split(":", 1), held) for s, v, _ in sets if s.startswith("speech"))
    assert names[-4:] == ["silent, FER faces"] * 4
    assert {p.label for _, _, parts in sets for p in parts} == {"NEU", "HAP"}
    silent = sets[-1][2][0]
    assert silent.audio is not None and not silent.audio.any() and silent.audio.size == 20 * 16000
    assert len({v for s, v, _ in sets if s == "silent, FER faces"}) == 4  # a different person each visit
    from edge.bench.calm import fer_original_labels

    original = fer_original_labels()  # a silent face's false alert names the face's original FER2013 label
    labels = np.load(DATA_DIR / "face" / "fer2013" / "fer2013.npz")["labels"]
    assert {row for code in faces for row, _ in faces[code]} <= set(original)  # every calm face has one
    assert original[32907] == "angry" and labels[32907] == 0  # FER+ votes happy 6 / anger 3; FER2013 says angry
    assert original[32628] == "happy" and labels[32628] == 3
    assert {str(usage[row]) for row in original} == {"PrivateTest"} and len(original) == 3589


def test_speech_onset_finds_the_first_word_not_the_hiss() -> None:
    """Leading silence of a clip: hiss 50 dB down is silence; the first loud 30 ms frame is the onset."""
    import numpy as np

    from edge.bench.alerts import speech_onset

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    word = 0.5 * np.sin(2 * np.pi * 220 * t)
    clip = np.concatenate([rng.normal(0, 0.5 * 10 ** (-50 / 20), 12000), word]).astype(np.float32)
    assert abs(speech_onset(clip) - 0.75) <= 0.03
    assert speech_onset(word.astype(np.float32)) == 0.0 and speech_onset(np.zeros(100, np.float32)) == 0.0


def test_synthetic_floor_orders_watch_before_alert() -> None:
    """A clean calm → angry step: the default policy warns (watch) before it alerts, both after the step."""
    floor = synthetic_floor()
    assert floor["watch_s"] is not None and floor["alert_s"] is not None
    assert 0 < floor["watch_s"] <= floor["alert_s"] < 30
    slower = synthetic_floor(None, {"half_life_s": 2.0, "voice_half_life_s": 2.0})
    assert slower["alert_s"] is not None and slower["alert_s"] > floor["alert_s"]
    held = synthetic_floor({"alert_hold_s": 1.0})  # the alert level itself held 1 s: later than reaching it
    assert held["alert_s"] is not None and held["alert_s"] > floor["alert_s"]


@needs_broker
def test_bench_smoke(tmp_path: Path) -> None:
    """`edge-emotion bench --seconds 2` writes JSON with every stage timed, the service run, a PNG and Markdown."""
    md = tmp_path / "pipeline.md"
    assert main(["bench", "--seconds", "2", "--out", str(tmp_path), "--markdown", str(md)]) == 0
    res = json.loads((tmp_path / "pipeline.json").read_text())
    for key in ("one_core", "all_cores"):
        stages = res[key]["stages_ms"]
        assert set(stages) == set(STAGES)
        for s in ("decode", "detect", "expression", "voice", "vad", "features", "voice_model", "fusion", "publish",
                  "broker_delivery", "e2e_publish"):
            assert stages[s]["n"] > 0 and 0 <= stages[s]["p50"] <= stages[s]["p95"], (key, s, stages[s])
        assert res[key]["throughput_fps"] > 0 and res[key]["rss_mb"] > 0
    assert res["one_core"]["affinity"] == [res["one_core"]["affinity"][0]] and res["one_core"]["threads"] == 1
    svc = res["service"]
    assert svc["rss_mb"] > 0 and svc["cpu_pct"] > 0 and "capture_to_publish_ms" in svc
    assert svc["health"]["fps_analysed"] > 0 and svc["health"]["mqtt"]["published"] > 0
    assert res["machine"]["cores"] >= 1
    text = md.read_text()
    assert "| face detection" in text and "Raspberry Pi" in text and "face.md" in text
    assert (tmp_path / "pipeline.png").stat().st_size > 1000


@needs_broker
def test_soak_smoke(tmp_path: Path) -> None:
    """A ~10 s soak of the real service produces samples with RSS, threads and health figures, and exits cleanly."""
    md = tmp_path / "soak.md"
    assert main(["soak", "--minutes", "0.17", "--interval", "2", "--out", str(tmp_path), "--markdown", str(md)]) == 0
    res = json.loads((tmp_path / "soak.json").read_text())
    assert res["exit_code"] == 0 and res["n_samples"] >= 3
    s = res["samples"]
    assert all(x["rss_mb"] > 20 and x["threads"] >= 1 for x in s)
    assert any("fps_analysed" in x for x in s) and res["rss_drift_mb"] is not None
    assert s[-1]["events"].get("health", 0) >= 1
    assert "RSS drift" in md.read_text()


def test_alert_bench_speakers_are_the_ones_the_voice_model_never_heard(tmp_path: Path) -> None:
    """Unseen speakers come from the model's metrics JSON; a model that lists none keeps the 0.1.x rule."""
    from edge.bench.calm import held_out_speakers, is_unseen

    assert held_out_speakers(tmp_path) is None
    (tmp_path / "voice_emotion.metrics.json").write_text(json.dumps({"held_out_speakers": ["urdu:SM4", "ased:65"]}))
    held = held_out_speakers(tmp_path)
    assert held == {"urdu:SM4", "ased:65"}
    assert is_unseen("urdu", "SM4", held) and is_unseen("crema-d", "1001", held)
    assert not is_unseen("urdu", "SM1", held) and not is_unseen("emodb", "03", held)
    assert is_unseen("emodb", "03", None) and is_unseen("ravdess", "Actor_20", None)
    assert not is_unseen("ravdess", "Actor_02", None) and not is_unseen("ased", "65", None)


def test_cues_page_reads_the_figures_it_prints() -> None:
    """The page said "within the target" whatever the rate was (a verdict written into the template)."""
    from edge.bench.cues import SETTINGS, markdown

    def res(care: int, minutes: float) -> dict[str, Any]:
        rate = round(care / (minutes / 60), 2)
        s = {"care": care, "positive": 0, "false_positive": 0, "false_care_per_hour": rate,
             "false_care_95_upper_per_hour": round((care + 3) / (minutes / 60), 2), "false_positive_per_hour": 0.0,
             "false_positive_95_upper_per_hour": 1.0, "hits": []}
        return {"args": {"minutes": minutes, "silent_visits": 0}, "date": "2026-01-01", "wall_s": 60.0,
                "machine": {"cpu": "test", "usable_cores": 1}, "models": {},
                "false_cues": {"media_minutes": minutes, "visits": 10, "minutes_without_happy": 5.0,
                               "settings": {name: s for name, _ in SETTINGS}}}

    assert "over the target" in markdown(res(9, 60.0)) and "within the target" not in markdown(res(9, 60.0))
    assert "within the target, but" in markdown(res(0, 60.0))
    assert "6.0 min of media per visit" in markdown(res(0, 60.0))


def test_false_alerts_name_a_silent_faces_original_label(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A silent face's hits carry its original FER2013 label; only its alerts are counted by label (no data needed)."""
    from types import SimpleNamespace

    import edge.bench.alerts as ab

    visits = [("speech, FER faces", "ased:62", []), ("silent, FER faces", "fer:32907", []),
              ("silent, FER faces", "fer:32755", [])]
    monkeypatch.setattr(ab, "calm_sets", lambda silent, gain: iter(visits))
    monkeypatch.setattr(ab, "fer_original_labels", lambda: {32907: "angry", 32755: "neutral"})
    monkeypatch.setattr(ab, "compose", lambda parts, path, stem: SimpleNamespace(duration_s=60.0))
    hits = iter([[{"level": "alert", "media_t": 3.0, "reason": "voice_agitation"}],
                 [{"level": "alert", "media_t": 2.0, "reason": "sustained"},
                  {"level": "recovered", "media_t": 9.0, "reason": "recovered"}],
                 [{"level": "watch", "media_t": 2.0, "reason": "sustained"}]])

    def runs(sc: object, analyzers: object) -> Iterator[tuple[str, object]]:
        yield "default", SimpleNamespace(events=[], alerts=next(hits))

    monkeypatch.setattr(ab, "_runs", runs)
    out = ab.false_alerts(None, tmp_path, max_minutes=60, gains=(1.0,), silent_visits=2)["settings"]["default"]
    labels = [(h["visit"], h.get("fer2013_label")) for h in out["hits"]]
    assert labels == [("ased:62", None), ("fer:32907", "angry"), ("fer:32907", "angry"), ("fer:32755", "neutral")]
    assert out["silent_face_alerts_by_fer2013_label"] == {"angry": 1}  # the watch and the recovery are not alerts
    assert out["counts"] == {"watch": 1, "alert": 2, "recovered": 1}


def test_pipeline_page_explains_events_sent_in_their_own_step() -> None:
    """No event sharing a step with a frame (the loop wakes when one is due) reads as such, not as nan or a dash."""
    from edge.bench.report import NO_SAME_STEP, pipeline_markdown

    res = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bench" / "pipeline.json").read_text())
    res["service"]["capture_to_publish_ms"] = {"n": 0}
    md = pipeline_markdown(res)
    assert NO_SAME_STEP in md and "nan" not in md
    assert "no event was sent in the same step as a frame" in md
    res["service"]["capture_to_publish_ms"] = {"n": 3, "p50": 12.0, "p95": 30.0, "mean": 15.0}
    md = pipeline_markdown(res)
    assert NO_SAME_STEP not in md and "events sent in the same step as their frame 30.0 ms (n=3)" in md


def test_alert_bench_needs_the_blazeface_detector(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Its figures are BlazeFace's: a models folder without the detector file is an error naming the file, not a
    quiet run on the service's Haar fall-back (a 0.2.4 run did that from a copied folder: slower, other faces)."""
    import edge.bench.alerts as ab
    import edge.pipeline.analyzers as pa
    from edge.runtime.manifest import ModelError

    (tmp_path / "av" / "crema-d").mkdir(parents=True)
    monkeypatch.setattr(ab, "DATA_DIR", tmp_path)
    seen: list[str] = []

    def build(cfg: Any) -> Any:
        seen.append(cfg.models.face_detector)
        raise ModelError("model 'face_detector': file not found: /x/face_detection_short_range.tflite")

    monkeypatch.setattr(pa, "build_analyzers", build)
    rc = ab.cli_alerts(SimpleNamespace(out=tmp_path / "out", gains="1", minutes=1.0, silent_visits=0))
    assert rc == 2 and seen == ["blazeface"]
    assert "face_detection_short_range.tflite" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
