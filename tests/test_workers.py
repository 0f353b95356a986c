"""Analysis workers: a microphone outage does not splice old audio into new windows; a failing face analysis is
paced and its log rate-limited."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from test_pause import _worker_host

from edge.types import Frame


def test_audio_from_before_a_microphone_outage_is_not_analysed_as_new() -> None:
    """After the device came back, the first windows were mostly the previous customer's audio, stamped now."""
    from edge.pipeline import workers

    shares: list[float] = []

    class Voice:
        window_s = 1.0

        def analyze(self, audio: Any, t: float, end: Any = None) -> None:
            shares.append(float(np.mean(np.isclose(audio, 0.5))))  # 0.5 = captured before the outage

    svc = _worker_host({"analysis": {"voice_hop_s": 0.25}}, threading.Event(), an=SimpleNamespace(voice=Voice()))
    th = threading.Thread(target=workers.voice_loop, args=(svc,), daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            svc.ring.write(np.full(800, 0.5, np.float32), time.monotonic())
            time.sleep(0.05)
        time.sleep(0.3)
        before = len(shares)
        assert before and shares[-1] == 1.0
        time.sleep(2.0)  # the microphone is away: nothing captured
        t1 = time.monotonic()
        while time.monotonic() - t1 < 1.5:
            svc.ring.write(np.full(800, 0.1, np.float32), time.monotonic())
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        svc.stop.set()
        th.join(5)
    after = shares[before:]
    assert after and all(s == 0.0 for s in after), after


def test_a_failing_face_analysis_is_paced_at_the_analysis_rate() -> None:
    """The error path skipped the wait: analysis ran at camera rate, a full traceback each time."""
    from edge.pipeline import workers

    calls: list[float] = []

    def analyze(frame: Any) -> None:
        calls.append(time.monotonic())
        raise RuntimeError("broken model")

    svc = _worker_host({"analysis": {"face_fps": 2.0}}, threading.Event(), an=SimpleNamespace(face=SimpleNamespace(
        analyze=analyze)))
    th = threading.Thread(target=workers.face_loop, args=(svc,), daemon=True)
    th.start()
    try:
        t0, seq = time.monotonic(), 0
        while time.monotonic() - t0 < 2.0:
            seq += 1
            svc.frames.put(Frame(image=None, t=time.monotonic(), seq=seq))
            time.sleep(0.02)
    finally:
        svc.stop.set()
        th.join(5)
    assert svc.errors["face"] == len(calls) and 2 <= len(calls) <= 6, len(calls)
