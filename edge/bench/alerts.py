"""``edge-emotion bench alerts``: time from the start of anger to the alert, and false alerts per hour of calm material.

Both run real media through the real int8 models once, then the service's Core on media time once per setting
(default settings first; the others for comparison in the same run, on the same model readings). Calm material:
edge/bench/calm.py (speech behind two kinds of faces, and silent faces). ``--gains`` replays the speech
louder/softer (kiosk microphone gain is unknown); that is not independent material (voice features are
gain-normalised). Angry voices: each speaker the shipped voice model never heard (its metrics JSON lists the held-out
speakers of every corpus; CREMA-D is never trained on) speaks neutral → angry → neutral behind a calm face.
Results and their reading: docs/bench/alerts.md.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.calm import calm_sets, fer_original_labels, held_out_speakers, is_unseen, speech_rows
from edge.bench.common import machine
from edge.demo.scenario import DATA_DIR, Part, compose, crema_clip, record_scenario, replay_scenario

log = logging.getLogger(__name__)

ANGRY_SCENARIOS = ("NEU*5,ANG*8,NEU*8", "NEU*5,DIS*8,NEU*8", "NEU*5,FEA*8,NEU*8")
PREV = "previous defaults (alert level held 1 s, voice half-life 1 s, a voice window every 1 s)"
V01 = "v0.1 defaults (no voice_arousal; voice-only trigger at 0.7; half-lives 2 s, sustain 2 s)"
HOP05 = "a voice window every 0.5 s (the default until windows shared their mel frames; default otherwise)"
Section = dict[str, Any] | None
# (name, alerts, fusion, analysis) sections over the defaults: today's, earlier defaults and the previous voice hop
SETTINGS: tuple[tuple[str, Section, Section, Section], ...] = (
    ("default", None, None, None),
    (PREV, {"alert_hold_s": 1.0}, {"voice_half_life_s": 1.0}, {"voice_hop_s": 1.0}),
    (V01, {"voice_agitation_threshold": 0.7, "sustain_s": 2.0, "alert_hold_s": 2.0},
     {"voice_arousal": False, "half_life_s": 2.0, "voice_half_life_s": 2.0}, {"voice_hop_s": 1.0}),
    (HOP05, None, None, {"voice_hop_s": 0.5}))
FLOOR_VARIANTS: tuple[tuple[Section, Section, Section], ...] = tuple(x[1:] for x in SETTINGS)


ONSET_DB = -40.0  # speech starts at the first 30 ms frame within 40 dB of the clip's loudest: early, so conservative


def speech_onset(audio: np.ndarray, rate: int = 16000) -> float:
    """Seconds of leading silence in a clip: the first 30 ms frame whose RMS is within ONSET_DB of its loudest."""
    n = int(0.03 * rate)
    k = audio.size // n
    if k == 0:
        return 0.0
    rms = np.sqrt((audio[: k * n].reshape(k, n).astype(np.float64) ** 2).mean(1))
    return float(np.argmax(rms >= rms.max() * 10 ** (ONSET_DB / 20)) * n / rate)


def _cfg(alerts: Section = None, fusion: Section = None, analysis: Section = None, models: Section = None) -> Any:
    from edge.config import parse_config

    return parse_config({"identity": {"site_id": "bench", "kiosk_id": "alerts"}, "mqtt": {"enabled": False},
                         "alerts": alerts or {}, "fusion": fusion or {}, "analysis": analysis or {},
                         "models": models or {}})


def _runs(sc: Any, analyzers: Any) -> Iterator[tuple[str, Any]]:
    """(setting, ScenarioRun) per SETTINGS row; the media are analysed once per distinct analysis section."""
    recorded: dict[str, tuple[list[Any], float]] = {}
    for name, alerts, fusion, analysis in SETTINGS:
        cfg = _cfg(alerts, fusion, analysis)
        key = json.dumps(analysis or {}, sort_keys=True)
        if key not in recorded:
            recorded[key] = record_scenario(sc, cfg, analyzers)
        yield name, replay_scenario(sc, cfg, recorded=recorded[key])


def angry_latency(analyzers: Any, tmp: Path) -> list[dict[str, Any]]:
    """Each angry/disgust/fear scenario, default settings and without the voice rule: times to watch/alert/recovered."""
    from edge.demo.scenario import build_scenario

    rows = []
    for spec in ANGRY_SCENARIOS:
        sc = build_scenario(spec, tmp / spec.replace("*", "x").replace(",", "_"))
        for name, run in _runs(sc, analyzers):
            s = run.summary()
            rows.append({"scenario": spec, "settings": name, **{k: s[k] for k in (
                "negative_start_s", "time_to_watch_s", "time_to_alert_s", "time_to_recovered_s", "n_alert",
                "peak_escalation")}})
    return rows


def speech_by_speaker(data: Path = DATA_DIR, held: set[str] | None = None) -> dict[str, dict[str, list[Path]]]:
    """Unseen speakers (``is_unseen``) -> {"NEU"/"ANG": their neutral / angry clips}."""
    out: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for corpus, speaker, emo, path in speech_rows(data):
        code = "ANG" if emo in ("anger", "angry") else "NEU" if emo == "neutral" else None
        if code and is_unseen(corpus, speaker, held):
            out[f"{corpus}:{speaker}"][code].append(path)
    return {k: dict(v) for k, v in out.items() if v["ANG"] and v["NEU"]}


def angry_voices(analyzers: Any, tmp: Path) -> dict[str, Any]:
    """Per unseen speaker, a visit with a calm face (CREMA-D 1001 neutral, looped) and their own voice: 3 neutral,
    6 angry, 3 neutral clips. Per setting: time from the first angry clip, and from its first word, to watch/alert."""
    from edge.capture.media import read_audio_file

    face = crema_clip("NEU")
    rows = []
    for speaker, clips in sorted(speech_by_speaker(held=held_out_speakers()).items()):
        neu, ang = clips["NEU"] * 6, clips["ANG"] * 6
        plan = [("NEU", p) for p in neu[:3]] + [("ANG", p) for p in ang[:6]] + [("NEU", p) for p in neu[3:6]]
        sc = compose([Part(code, face, read_audio_file(p, 16000)) for code, p in plan], tmp / "voices", stem="visit")
        lead = round(speech_onset(read_audio_file(ang[0], 16000)), 3)  # silence before the first angry word
        for name, run in _runs(sc, analyzers):
            s = run.summary()
            early = [a for a in s["alerts"]
                     if a["level"] in ("watch", "alert") and a["media_t"] < s["negative_start_s"]]
            ta = s["time_to_alert_s"]
            rows.append({"speaker": speaker, "settings": name, "early": len(early), **{k: s[k] for k in (
                "time_to_watch_s", "time_to_alert_s", "time_to_recovered_s", "peak_escalation")},
                "speech_onset_s": lead, "time_to_alert_from_speech_s": None if ta is None else round(ta - lead, 3)})
    summary = {}
    for name, *_ in SETTINGS:
        mine = [r for r in rows if r["settings"] == name]
        alerted = sorted(r["time_to_alert_s"] for r in mine if r["time_to_alert_s"] is not None)
        watched = sorted(r["time_to_watch_s"] for r in mine if r["time_to_watch_s"] is not None)
        spoken = sorted(r["time_to_alert_from_speech_s"] for r in mine if r["time_to_alert_s"] is not None)
        summary[name] = {"speakers": len(mine), "alerted": len(alerted), "watched": len(watched),
                         "median_to_alert_s": median_with_misses([r["time_to_alert_s"] for r in mine]),
                         "alerted_within_3s": sum(t <= 3.0 for t in alerted),
                         "median_to_alert_from_speech_s": median_with_misses(
                             [r["time_to_alert_from_speech_s"] for r in mine]),
                         "alerted_within_3s_from_speech": sum(t <= 3.0 for t in spoken),
                         "median_to_watch_s": median_with_misses([r["time_to_watch_s"] for r in mine]),
                         "median_over": "every speaker; one without an alert counts as never (None: over half never)",
                         "early": sum(r["early"] for r in mine)}
    return {"summary": summary, "rows": rows}


def median_with_misses(times: list[float | None]) -> float | None:
    """Median over every speaker, a miss (None) counting as never; None when the median itself is a miss (the
    median over those who alerted only made a run where some never alert look faster)."""
    if not times:
        return None
    med = float(np.median([np.inf if t is None else t for t in times]))
    return round(med, 2) if np.isfinite(med) else None


def clip_readings(analyzers: Any) -> dict[str, dict[str, Any]]:
    """Per CREMA-D clip: mean face probabilities and confidence over its frames, and the voice model's clip reading."""
    from edge.capture.media import iter_video_file
    from edge.policy.fusion import escalation_score
    from edge.types import EMOTIONS, Frame

    out = {}
    for code in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
        clip = crema_clip(code)
        faces = [r for i, (t, img) in enumerate(iter_video_file(DATA_DIR / "av" / "crema-d" / f"{clip.name}.mp4"))
                 if (r := analyzers.face.analyze(Frame(img, t, i))) is not None]
        fp = np.mean([r.probs for r in faces], axis=0) if faces else np.zeros(len(EMOTIONS))
        v = analyzers.voice.analyze(clip.audio, len(clip.audio) / 16000)
        def named(p: Any) -> dict[str, float]:
            return {e: round(float(x), 3) for e, x in zip(EMOTIONS, p, strict=True)}

        out[code] = {"face_frames": len(faces), "face": named(fp),
                     "face_conf": round(float(np.mean([r.confidence for r in faces])), 3) if faces else None,
                     "face_escalation": round(escalation_score(fp), 3),
                     "voice": None if v is None else named(v.probs),
                     "voice_conf": None if v is None else round(v.confidence, 3),
                     "voice_escalation": None if v is None else round(escalation_score(v.probs), 3)}
    return out


def synthetic_floor(alerts: Section = None, fusion: Section = None, analysis: Section = None) -> dict[str, Any]:
    """Policy + fusion lag alone: readings jump from calm to clearly angry at t=10 s (both modalities, 8 fps face,
    voice every voice_hop_s); time until the policy (default unless overridden) sends watch and alert: the floor."""
    from edge.events import EventFactory
    from edge.policy.core import Core, Observation
    from edge.types import EMOTIONS, Reading

    cfg = _cfg(alerts, fusion, analysis)
    every = max(1, round(8 * cfg.analysis.voice_hop_s))
    core = Core(cfg, EventFactory(cfg.identity), to_wall=lambda t: t + 1.8e9)
    calm = np.array([0.9, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01])
    angry = np.zeros(len(EMOTIONS))
    angry[EMOTIONS.index("angry")], angry[EMOTIONS.index("neutral")] = 0.8, 0.2
    first: dict[str, float] = {}
    for i in range(8 * 30):
        t = i / 8
        p = angry if t >= 10 else calm
        core.observe(Observation("face", t, Reading("face", t, p, 0.7)))
        if i % every == 0:
            core.observe(Observation("voice", t, Reading("voice", t, p, 0.5)))
        for kind, body in core.tick(t):
            if kind == "alert":
                first.setdefault(body["level"], t - 10)
    return {"alerts": alerts or {}, "fusion": fusion or {}, "analysis": analysis or {}, "watch_s": first.get("watch"),
            "alert_s": first.get("alert")}


def false_alerts(analyzers: Any, tmp: Path, max_minutes: float, gains: tuple[float, ...], silent_visits: int
                 ) -> dict[str, Any]:
    """Replay every calm visit (speech per gain, silent visits once; until ``max_minutes``) under each setting."""
    media: dict[str, float] = defaultdict(float)
    per: dict[str, dict[str, Any]] = {name: {"counts": {"watch": 0, "alert": 0, "recovered": 0},
                                             "cues": {"care": 0, "positive": 0}, "hits": [],
                                             "other_gains": defaultdict(lambda: {"watch": 0, "alert": 0}),
                                             "by_set": defaultdict(lambda: {"watch": 0, "alert": 0})}
                                      for name, *_ in SETTINGS}
    original = fer_original_labels()  # a silent face's hit names the face's original FER2013 label too
    n_visits = 0
    for gain in gains:
        for set_name, visit, parts in calm_sets(silent_visits if gain == gains[0] else 0, gain):
            if sum(media.values()) >= max_minutes * 60:
                break
            sc = compose(parts, tmp / "calm", stem="visit")
            media[f"{set_name} ×{gain:g}"] += sc.duration_s
            n_visits += 1
            primary = gain == gains[0]  # a louder/softer replay is the same material: reported apart, never as hours
            for name, run in _runs(sc, analyzers):
                for ev in run.events:  # care cues (positive is off by default): nobody here is sad, all are false
                    if primary and ev["schema"].split("/")[1] == "cue":
                        per[name]["cues"][ev["kind"]] += 1
                for a in run.alerts:
                    if not primary:
                        if a["level"] in ("watch", "alert"):
                            per[name]["other_gains"][f"×{gain:g}"][a["level"]] += 1
                    else:
                        per[name]["counts"][a["level"]] += 1
                        if a["level"] in ("watch", "alert"):
                            per[name]["by_set"][set_name][a["level"]] += 1
                    hit = {"set": set_name, "visit": visit, "gain": gain, "media_t": a["media_t"],
                           "level": a["level"], "reason": a["reason"]}
                    if visit.startswith("fer:"):
                        hit["fer2013_label"] = original.get(int(visit[4:]), "unknown")
                    per[name]["hits"].append(hit)
    hours = sum(v for k, v in media.items() if k.endswith(f"×{gains[0]:g}")) / 3600  # independent material only
    out: dict[str, Any] = {"media_minutes": round(hours * 60, 1), "visits": n_visits,
                           "minutes_by_set": {k: round(v / 60, 1) for k, v in media.items()}, "settings": {}}
    for name, r in per.items():
        n = r["counts"]["alert"]
        silent = Counter(h["fer2013_label"] for h in r["hits"] if h["level"] == "alert" and "fer2013_label" in h)
        out["settings"][name] = {**r, "by_set": dict(r["by_set"]), "other_gains": dict(r["other_gains"]),
                                 "silent_face_alerts_by_fer2013_label": dict(silent),
                                 "alerts_per_hour": round(n / hours, 2) if hours else None,
                                 "watches_per_hour": round(r["counts"]["watch"] / hours, 2) if hours else None,
                                 "care_cues_per_hour": round(r["cues"]["care"] / hours, 2) if hours else None,
                                 "alert_rate_95_upper_per_hour": round(_poisson_upper(n) / hours, 2) if hours else None}
    return out


def _poisson_upper(k: int) -> float:
    """One-sided 95% upper bound of a Poisson mean after observing ``k`` events (exact, by bisection)."""
    from math import exp, lgamma, log

    def cdf(mu: float) -> float:  # in log space: mu ** i overflowed from k = 124
        return sum(exp(-mu + i * log(mu) - lgamma(i + 1)) for i in range(k + 1)) if mu > 0 else 1.0

    lo, hi = 0.0, 10.0 + 5 * k
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi


def cli_alerts(args: Any) -> int:
    """Entry of ``edge-emotion bench alerts``: writes ``alerts.json`` in --out and prints it."""
    from edge.pipeline.analyzers import build_analyzers

    if not (DATA_DIR / "av" / "crema-d").is_dir():
        print(f"error: the research data are not at {DATA_DIR}")
        return 2
    from edge.runtime.manifest import ModelError

    try:  # the figures are BlazeFace's: a missing detector file is an error here, not the service's Haar fall-back
        an = build_analyzers(_cfg(models={"face_detector": "blazeface"}))
    except ModelError as exc:
        print(f"error: {exc} (the alert benchmark runs with the BlazeFace detector: run scripts/install-models, or "
              "copy face_detection_short_range.tflite into EDGE_EMOTION_MODELS)")
        return 2
    gains = tuple(float(g) for g in str(getattr(args, "gains", "1") or "1").split(","))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edge-bench-alerts-") as tmp:
        res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
               "clips": clip_readings(an), "angry": angry_latency(an, Path(tmp)),
               "angry_voices": angry_voices(an, Path(tmp)),
               "synthetic_floor": [synthetic_floor(*o) for o in FLOOR_VARIANTS],
               "false_alerts": false_alerts(an, Path(tmp), args.minutes, gains, args.silent_visits)}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alerts.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0
