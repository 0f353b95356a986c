"""Customer scenarios: concatenate audio-visual clips (e.g. neutral → angry → neutral) and replay them for real.

``NEU*5,ANG*8,NEU*6`` means the CREMA-D neutral clip five times, then the angry one eight times, then neutral
six times: one video and one 16 kHz audio file written to a folder of the caller's choosing (a temp dir; the
research clips are never copied into the project), with ``scenario.json`` listing every segment's media time.
The replay runs the same ``Core`` as the service on media time, so alert times are media seconds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import soundfile as sf

from edge.capture.media import MediaError, iter_video_file, read_audio_file

log = logging.getLogger(__name__)

RATE = 16000
DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared/data from the project root
CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
NEGATIVE = ("ANG", "DIS", "FEA")  # segments that count as "sustained anger/agitation" for the time-to-alert
_ITEM = re.compile(r"^\s*([A-Za-z]{3})\s*(?:\*\s*(\d{1,4}))?\s*$")
_START_WALL = 1_800_000_000.0  # fixed replay epoch: event ts - this = media time (ms precision)


class ScenarioError(ValueError):
    """A scenario spec or its source clips are unusable; the message says what and why."""


@dataclass(frozen=True)
class Clip:
    """One decoded source clip: BGR frames at ``fps`` and its 16 kHz mono audio (may be empty)."""

    name: str
    frames: tuple[np.ndarray, ...]
    fps: float
    audio: np.ndarray


@dataclass(frozen=True)
class Part:
    """A piece of a scenario: frames of ``clip`` looped for ``audio``'s length (or the clip's own length)."""

    label: str
    clip: Clip
    audio: np.ndarray | None = None  # None: the clip's own audio, cut to its frames' duration


@dataclass(frozen=True)
class Segment:
    """Where one part landed in the scenario's media time."""

    label: str
    start_s: float
    end_s: float


@dataclass
class Scenario:
    """Built media and their timeline."""

    video: Path
    audio: Path
    fps: float
    segments: list[Segment]
    duration_s: float

    def first_start(self, labels: Sequence[str]) -> float | None:
        """Media time at which the first segment with one of ``labels`` starts."""
        return next((s.start_s for s in self.segments if s.label in labels), None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"video": str(self.video), "audio": str(self.audio), "fps": self.fps, "duration_s": self.duration_s,
                "segments": [asdict(s) for s in self.segments]}


@dataclass
class ScenarioRun:
    """A replayed scenario: every event, and the alerts with their media time."""

    scenario: Scenario
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # payload + "media_t"
    escalation: list[tuple[float, float, float]] = field(default_factory=list)  # (media t, escalation, confidence)
    visits: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def first(self, level: str, after: float = 0.0) -> dict[str, Any] | None:
        """First alert message of ``level`` (watch/alert/recovered) at or after media time ``after``."""
        return next((a for a in self.alerts if a["level"] == level and a["media_t"] >= after), None)

    def summary(self) -> dict[str, Any]:
        """Counts and the time from the start of the first negative segment to the first watch/alert."""
        neg = self.scenario.first_start(NEGATIVE)
        out: dict[str, Any] = {"duration_s": round(self.scenario.duration_s, 3), "visits": len(self.visits),
                               "alerts": [{k: a[k] for k in ("media_t", "level", "reason", "visit_id")}
                                          | {"hint": a["hint"]["text"]} for a in self.alerts],
                               "negative_start_s": neg, "wall_s": round(self.wall_s, 3)}
        for level in ("watch", "alert", "recovered"):
            out[f"n_{level}"] = sum(a["level"] == level for a in self.alerts)
            hit = self.first(level, neg if neg is not None else 0.0)
            out[f"time_to_{level}_s"] = round(hit["media_t"] - neg, 3) if hit and neg is not None else None
        out["peak_escalation"] = round(max((e for _, e, _ in self.escalation), default=0.0), 4)
        return out


def parse_spec(spec: str) -> list[tuple[str, int]]:
    """``"NEU*5,ANG*8"`` -> [("NEU", 5), ("ANG", 8)]; ScenarioError naming the bad item."""
    items = [s for s in spec.split(",") if s.strip()]
    if not items:
        raise ScenarioError("empty scenario: give items like NEU*5,ANG*8,NEU*6")
    out = []
    for item in items:
        m = _ITEM.match(item)
        if m is None or m.group(1).upper() not in CODES:
            raise ScenarioError(f"scenario item {item.strip()!r}: expected CODE or CODE*N with CODE one of "
                                f"{', '.join(CODES)}")
        n = int(m.group(2) or 1)
        if not 1 <= n <= 1000:
            raise ScenarioError(f"scenario item {item.strip()!r}: repeat count must be 1..1000")
        out.append((m.group(1).upper(), n))
    return out


@lru_cache(maxsize=16)
def load_clip(path: Path, audio_path: Path | None = None) -> Clip:
    """Decode every frame of ``path`` and its audio (``audio_path`` if given, else the video's own track)."""
    frames = [img for _, img in iter_video_file(path)]
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 15.0)
    cap.release()
    try:
        audio = read_audio_file(audio_path or path, RATE)
    except MediaError as exc:
        if audio_path is not None:
            raise
        log.warning("%s: no audio (%s); the scenario gets silence for it", path, exc)
        audio = np.zeros(0, np.float32)
    return Clip(path.stem, tuple(frames), fps, audio)


def crema_speech(code: str, data_dir: Path = DATA_DIR, actor: str = "1001", sentence: str = "DFA") -> Path:
    """Where the staged CREMA-D speech clip (FLAC) of ``actor`` for ``code`` lives (it may be absent)."""
    return data_dir / "speech" / "crema-d" / f"{actor}_{sentence}_{code}_XX.flac"


def crema_clip(code: str, data_dir: Path = DATA_DIR, actor: str = "1001", sentence: str = "DFA") -> Clip:
    """The CREMA-D audio-visual clip for ``code`` with its FLAC audio (same recording) when staged."""
    video = data_dir / "av" / "crema-d" / f"{actor}_{sentence}_{code}_XX.mp4"
    if not video.is_file():
        raise ScenarioError(f"clip {code}: {video} not found (CREMA-D fixtures live in ../shared/data/av/crema-d)")
    flac = crema_speech(code, data_dir, actor, sentence)
    return load_clip(video, flac if flac.is_file() else None)


def compose(parts: Sequence[Part], out_dir: Path, stem: str = "scenario",
            size: tuple[int, int] | None = None) -> Scenario:
    """Write ``stem.mp4`` (mp4v) and ``stem.wav`` (16 kHz PCM) from ``parts`` and return their timeline."""
    if not parts:
        raise ScenarioError("a scenario needs at least one part")
    fps = parts[0].clip.fps
    if any(abs(p.clip.fps - fps) > 0.01 for p in parts):
        raise ScenarioError("all clips of a scenario must have the same frame rate")
    out_dir.mkdir(parents=True, exist_ok=True)
    first = parts[0].clip.frames[0]
    w, h = size or (first.shape[1], first.shape[0])
    video, audio_path = out_dir / f"{stem}.mp4", out_dir / f"{stem}.wav"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise ScenarioError(f"cannot write {video} (OpenCV has no mp4v encoder?)")
    segments: list[Segment] = []
    chunks: list[np.ndarray] = []
    n_frames = n_samples = 0
    try:
        for p in parts:
            own = p.audio is None
            src = p.clip.audio if own else np.asarray(p.audio, np.float32)
            count = len(p.clip.frames) if own else max(1, round(src.size / RATE * fps))
            for i in range(count):
                img = p.clip.frames[i % len(p.clip.frames)]
                writer.write(img if img.shape[:2] == (h, w) else _fit(img, w, h))
            start_s = n_frames / fps
            n_frames += count
            end_sample = round(n_frames / fps * RATE)  # audio kept exactly in step with the frames
            need = end_sample - n_samples
            chunks.append(np.pad(src[:need], (0, max(0, need - src[:need].size))))
            n_samples = end_sample
            segments.append(Segment(p.label, round(start_s, 4), round(n_frames / fps, 4)))
    finally:
        writer.release()
    sf.write(str(audio_path), np.concatenate(chunks), RATE, subtype="PCM_16")
    sc = Scenario(video, audio_path, fps, segments, n_frames / fps)
    (out_dir / f"{stem}.json").write_text(json.dumps(sc.to_json(), indent=1))
    return sc


def _fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Letterbox ``img`` into a w×h canvas (aspect kept, grey borders)."""
    s = min(w / img.shape[1], h / img.shape[0])
    r = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))))
    canvas = np.full((h, w, 3), 96, np.uint8)
    y, x = (h - r.shape[0]) // 2, (w - r.shape[1]) // 2
    canvas[y:y + r.shape[0], x:x + r.shape[1]] = r
    return canvas


def build_scenario(spec: str, out_dir: Path, data_dir: Path = DATA_DIR, size: tuple[int, int] | None = None,
                   voice: str | None = None, face: str | None = None) -> Scenario:
    """Media for a CREMA-D spec like ``NEU*5,ANG*8,NEU*6`` in ``out_dir``; ``voice``: another actor's staged speech
    clips instead of the clips' own audio; ``face``: one face code throughout (``NEU``: a calm face)."""
    if face is not None and face.upper() not in CODES:
        raise ScenarioError(f"face {face!r}: expected one of {', '.join(CODES)}")
    parts = []
    for code, n in parse_spec(spec):
        flac = crema_speech(code, data_dir, actor=str(voice))
        if voice is not None and not flac.is_file():
            raise ScenarioError(f"voice {voice!r}, clip {code}: {flac} not found")
        audio = None if voice is None else read_audio_file(flac, RATE)
        parts += [Part(code, crema_clip((face or code).upper(), data_dir), audio)] * n
    return compose(parts, out_dir, size=size)


def media_time(payload: dict[str, Any]) -> float:
    """Media time of a replayed event (its ``ts`` minus the fixed replay epoch)."""
    ts = datetime.fromisoformat(str(payload["ts"]).replace("Z", "+00:00")).timestamp()
    return round(ts - _START_WALL, 3)


def _replay_cfg(cfg: Any, audio: bool, video: bool) -> Any:
    from edge.config import parse_config

    if cfg is None:
        cfg = parse_config({"identity": {"site_id": "scenario", "kiosk_id": "replay", "counter_name": "Scenario"},
                            "mqtt": {"enabled": False}})
    cfg.camera.enabled, cfg.microphone.enabled = video, audio
    return cfg


def record_scenario(sc: Scenario, cfg: Any = None, analyzers: Any = None) -> tuple[list[Any], float]:
    """The real analyzers' observations of ``sc`` and its media length: replay them under many settings."""
    from edge.pipeline.analyzers import build_analyzers
    from edge.pipeline.replay import ReplayResult, observations

    cfg = _replay_cfg(cfg, True, True)
    res = ReplayResult()
    obs = list(observations(cfg, analyzers or build_analyzers(cfg), sc.video, sc.audio, res))
    return obs, res.media_s


def replay_scenario(sc: Scenario, cfg: Any = None, analyzers: Any = None, audio: bool = True,
                    video: bool = True, recorded: tuple[list[Any], float] | None = None) -> ScenarioRun:
    """Replay ``sc`` through the real analyzers (or their ``recorded`` observations) and Core on media time."""
    from edge.pipeline.analyzers import build_analyzers
    from edge.pipeline.replay import ReplayResult, replay, run_core

    cfg = _replay_cfg(cfg, audio, video)
    if recorded is not None:
        res = run_core(cfg, recorded[0], ReplayResult(media_s=recorded[1]), start_wall=_START_WALL)
    else:
        an = analyzers or build_analyzers(cfg)
        res = replay(cfg, an, sc.video if video else None, sc.audio if audio else None, start_wall=_START_WALL)
    run = ScenarioRun(sc, events=res.events, wall_s=res.wall_s)
    for ev in res.events:
        kind = ev["schema"].split("/")[1]
        if kind == "alert":
            run.alerts.append({**ev, "media_t": media_time(ev)})
        elif kind == "emotion":
            run.escalation.append((media_time(ev), float(ev["escalation"]), float(ev["confidence"])))
        elif kind == "visit" and ev["phase"] == "start":
            run.visits.append(ev["visit_id"])
    return run
