"""The service's analysis worker threads: captured frames and audio in, face and voice observations out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from edge.config import KioskConfig
from edge.lograte import RateLimitedLog
from edge.ops.health import LatencyStats, RateMeter
from edge.ops.watchdog import PipelineWatchdog
from edge.pipeline.analyzers import Analyzers
from edge.policy.core import Observation
from edge.queues import AudioRing, DropQueue
from edge.types import Frame
from edge.voicegate.gate import VoiceGate
from edge.voicegate.window import ChannelWindow

log = logging.getLogger(__name__)
_errors = RateLimitedLog(log)  # a failing analysis: counted every time (health), a few tracebacks a minute
GAP_S = 1.0  # new audio starting this long after the last pushed sample: the microphone was lost meanwhile


class WorkerHost(Protocol):
    """What the workers use of the service: captured input, analyzers, the observation queue, counters, stop."""

    cfg: KioskConfig  # read on every turn: remote config swaps it whole
    an: Analyzers
    clock: Callable[[], float]
    stop: threading.Event
    watchdog: PipelineWatchdog
    frames: DropQueue[Frame]
    ring: AudioRing
    gate: VoiceGate  # swapped whole by remote config
    obs: DropQueue[Observation]
    latency: LatencyStats
    analysed: RateMeter
    errors: dict[str, int]

    def analysis_off(self) -> bool:
        """Whether captured input must be discarded unread (staff pause or outside opening hours)."""
        ...

    def inputs_ended(self) -> bool:
        """Whether every capture source has finished (file runs; live devices never finish)."""
        ...


def after(samples: np.ndarray, t_end: float, since: float, rate: int) -> np.ndarray:
    """The samples captured at or after ``since`` (the last one at ``t_end``; ``rate`` per second)."""
    n = samples.shape[0]
    if n == 0 or t_end - (n - 1) / rate >= since:
        return samples
    keep = int(np.floor((t_end - since) * rate)) + 1
    return samples[n - max(0, min(n, keep)):]


def face_loop(svc: WorkerHost) -> None:
    """Face worker thread: analyse the newest frame at most ``analysis.face_fps`` times a second."""
    assert svc.an.face is not None
    next_t = svc.clock()
    on_since = -float("inf")  # analysis seen on from then; a frame captured before it may be from a pause
    while not svc.stop.is_set():
        svc.watchdog.beat("analyse-face")
        ended = svc.inputs_ended()  # read before the queue: frames put before the end are all seen
        if svc.analysis_off():
            on_since = float("inf")
        elif on_since == float("inf"):
            on_since = svc.clock()  # on again: nothing captured before this moment is analysed
        frame = svc.frames.drain_latest(timeout=0.5)
        if frame is None and ended:
            return  # the files are done and every frame is analysed: the service may stop
        if svc.analysis_off():  # paused or closed: the frame is discarded unread
            on_since = float("inf")
            continue
        if frame is None or frame.t < on_since:
            continue
        t0 = time.perf_counter()
        try:
            reading = svc.an.face.analyze(frame)
        except Exception:  # noqa: BLE001 - a bad frame must not stop the pipeline
            svc.errors["face"] += 1  # counted every time (health), logged a few times a minute, paced as a turn
            _errors.exception("face", "face analysis failed (frame %d); continuing", frame.seq)
            next_t = _wait_turn(svc, next_t)
            continue
        svc.latency.add("face", time.perf_counter() - t0)
        svc.analysed.tick()
        svc.obs.put(Observation("face", frame.t, reading))
        next_t = _wait_turn(svc, next_t)


def _wait_turn(svc: WorkerHost, last_t: float) -> float:
    """Wait until one face turn after ``last_t``, in slices of at most 0.5 s that re-read ``analysis.face_fps``
    (remote config may change it, a revert included); the next turn's start."""
    while True:
        due = last_t + 1.0 / svc.cfg.analysis.face_fps
        delay = due - svc.clock()
        if delay <= 0:
            return svc.clock() if delay < 0 else due  # late: the next turn counts from now, no burst to catch up
        if svc.stop.wait(min(delay, 0.5)):
            return due


def voice_loop(svc: WorkerHost) -> None:
    """Voice worker thread: every ``analysis.voice_hop_s``, gate the latest window of new audio, analyse the rest."""
    assert svc.an.voice is not None
    rate = svc.cfg.microphone.sample_rate
    win = int(svc.an.voice.window_s * rate)
    stream = ChannelWindow(win, svc.ring.channels)
    on_since = -float("inf")  # analysis seen on from then; audio captured before it may be from a pause
    last_end = float("inf")  # capture time of the last sample pushed (inf: none yet, so no gap)
    while not svc.stop.wait(svc.cfg.analysis.voice_hop_s):
        svc.watchdog.beat("analyse-voice")
        ended = svc.inputs_ended()  # read before the ring: audio written before the end is all seen
        new, t_end = svc.ring.read_new()  # audio lost while this worker lagged shows as overrun in health
        if svc.analysis_off():  # paused or closed: discarded unanalysed, and no window spans the pause
            stream.clear()
            on_since = float("inf")
            if ended and new.shape[0] == 0:
                return  # the files ended while analysis was off: nothing is left to analyse
            continue
        if on_since == float("inf"):
            on_since = svc.clock()  # on again: the samples captured before this moment are dropped
        new = after(new, t_end, on_since, rate)
        if new.shape[0] == 0:
            if ended:
                return  # the files are done and every window is analysed: the service may stop
            continue
        if t_end - new.shape[0] / rate - last_end > GAP_S:  # the microphone was away: no window spans the gap
            stream.clear()
        last_end = t_end
        stream.push(new)
        span, end, late = stream.latest()
        if span.shape[0] < int(win * 0.9):
            continue
        t = t_end - late / rate
        t0 = time.perf_counter()
        try:
            decision = svc.gate.decide(span, end)  # swapped whole by remote config; staff speech stops here
            svc.latency.add("gate", time.perf_counter() - t0)
            if decision.audio is None:
                svc.obs.put(Observation("voice", t, None))  # not analysed: as a window without speech
                continue
            t0 = time.perf_counter()
            reading = svc.an.voice.analyze(decision.audio, t, end=end)
        except Exception:  # noqa: BLE001
            svc.errors["voice"] += 1
            _errors.exception("voice", "voice analysis failed; continuing")
            continue
        svc.latency.add("voice", time.perf_counter() - t0)
        svc.obs.put(Observation("voice", t, reading))
