"""Replay a video (+ audio) file through the real analyzers and core as fast as possible, on media time."""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.capture.media import MediaError, iter_video_file, read_audio_channels, read_audio_file
from edge.config import KioskConfig
from edge.events import EventFactory
from edge.pipeline.analyzers import Analyzers
from edge.policy.core import Core, Observation
from edge.types import Frame
from edge.voicegate.gate import UngatedVoice, VoiceGate, make_gate

log = logging.getLogger(__name__)

Sink = Callable[[str, dict[str, Any]], None]


@dataclass
class ReplayResult:
    """What a replay produced."""

    events: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    voice_windows: int = 0
    face_readings: int = 0
    voice_readings: int = 0
    voice_gated: int = 0  # windows the staff-voice gate kept from the model (staff speech, overlap, ambiguous)
    media_s: float = 0.0
    wall_s: float = 0.0


def _face_obs(an: Analyzers, video: Path, fps: float, res: ReplayResult) -> Iterator[tuple[float, int, Observation]]:
    assert an.face is not None
    for i, (t, img) in enumerate(iter_video_file(video, fps=fps)):
        reading = an.face.analyze(Frame(image=img, t=t, seq=i))
        res.frames += 1
        res.face_readings += reading is not None
        res.media_s = max(res.media_s, t)
        yield t, 0, Observation("face", t, reading)


def _voice_obs(an: Analyzers, samples: np.ndarray, rate: int, hop_s: float, res: ReplayResult,
               gate: VoiceGate | None = None) -> Iterator[tuple[float, int, Observation]]:
    """Voice observations; ``samples`` is mono or (samples, channels), each window judged by the staff-voice gate."""
    assert an.voice is not None
    gate = gate or UngatedVoice()
    an.voice.reset()  # a replayed file is its own stream: its readings must not depend on what was replayed before
    win = int(an.voice.window_s * rate)
    hop = max(int(hop_s * rate), 1)
    for end in range(win, samples.shape[0] + 1, hop):
        t = end / rate
        window = gate.decide(samples[end - win:end], end).audio
        res.voice_gated += window is None
        reading = None if window is None else an.voice.analyze(window, t, end=end)
        res.voice_windows += 1
        res.voice_readings += reading is not None
        res.media_s = max(res.media_s, t)
        yield t, 1, Observation("voice", t, reading)


def read_voice(cfg: KioskConfig, src: Path) -> np.ndarray:
    """The file's audio as the kiosk would capture it: mono, or its first ``microphone.channels`` channels."""
    channels = cfg.microphone.channels
    if channels == 1:
        return read_audio_file(src, cfg.microphone.sample_rate)
    samples = read_audio_channels(src, cfg.microphone.sample_rate)
    if samples.shape[1] < channels:
        raise MediaError(f"audio file '{src}': has {samples.shape[1]} channel(s), microphone.channels = {channels}")
    return np.ascontiguousarray(samples[:, :channels])


def observations(cfg: KioskConfig, an: Analyzers, video: Path | None, audio: Path | None,
                 res: ReplayResult) -> Iterator[Observation]:
    """The analyzers' observations of the files in media-time order (lazily; counts go into ``res``)."""
    streams: list[Iterator[tuple[float, int, Observation]]] = []
    if video is not None and an.face is not None:
        streams.append(_face_obs(an, video, cfg.analysis.face_fps, res))
    if an.voice is not None and (audio is not None or video is not None):
        src = audio if audio is not None else video
        assert src is not None
        try:
            samples = read_voice(cfg, src)
        except MediaError as exc:
            if audio is not None:
                raise
            log.warning("no voice analysis: %s", exc)
        else:
            streams.append(_voice_obs(an, samples, cfg.microphone.sample_rate, cfg.analysis.voice_hop_s, res,
                                      make_gate(cfg)))
    if not streams:
        raise MediaError("nothing to replay: give a video and/or audio file, with the matching analysis enabled")
    return (obs for _, _, obs in heapq.merge(*streams, key=lambda x: (x[0], x[1])))


def run_core(cfg: KioskConfig, obs: Iterable[Observation], res: ReplayResult, sink: Sink | None = None,
             start_wall: float | None = None) -> ReplayResult:
    """Drive a fresh Core with ``obs`` on media time (recorded observations may be replayed under many configs)."""
    t_wall0 = time.perf_counter()
    start = time.time() if start_wall is None else start_wall
    factory = EventFactory(cfg.identity, clock=time.time)
    core = Core(cfg, factory, to_wall=lambda t: start + t)

    def out(kind: str, body: dict[str, Any]) -> None:
        # Event time is media time mapped to wall time, so the envelope's ts follows the replay clock.
        factory.clock = lambda: start + now
        payload = factory.make(kind, **body)
        res.events.append(payload)
        if sink is not None:
            sink(kind, payload)

    now = 0.0
    for ob in obs:
        now = ob.t
        for kind, body in core.observe(ob) + core.tick(ob.t):
            out(kind, body)
    # Flush: the readings of the last interval (e.g. the final voice window) still get an emotion event.
    t_flush = now
    while t_flush < res.media_s + cfg.fusion.emit_interval_s:
        t_flush = now = round(t_flush + 0.25, 6)
        for kind, body in core.tick(t_flush):
            out(kind, body)
    # Let the last visit end on media time so its summary is part of the replay.
    end = res.media_s + cfg.fusion.visit_end_s
    for kind, body in core.tick(end):
        now = end
        if kind == "visit":
            out(kind, body)
    res.wall_s += time.perf_counter() - t_wall0
    return res


def replay(cfg: KioskConfig, an: Analyzers, video: Path | None, audio: Path | None,
           sink: Sink | None = None, start_wall: float | None = None) -> ReplayResult:
    """Run the pipeline over the files on media time; every event goes to ``sink`` and into the result."""
    res = ReplayResult()
    return run_core(cfg, observations(cfg, an, video, audio, res), res, sink, start_wall)
