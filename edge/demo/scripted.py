"""Scripted readings: a clearly labelled stand-in for the face and voice models (demo and tests only).

Everything after the models is real: the service's threads, fusion, visits, the alert policy, the events and their
schemas, MQTT and the tablet. The readings follow a script of what the customer feels instead of what a model sees,
so the demo shows an escalation, an alert, an acknowledgement and a recovery on any machine, whatever models are
installed. The kiosk says so: its ``status`` lists the models as ``SCRIPTED`` and it logs a warning at start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.pipeline.analyzers import Analyzers
from edge.policy.fusion import escalation_score
from edge.types import EMOTIONS, Frame, Reading

log = logging.getLogger(__name__)

SCRIPTED = "SCRIPTED (no model: scripted readings)"
Timeline = Callable[[float], "np.ndarray | None"]  # seconds since the first reading -> probabilities, None: nobody


def blend(share: float, toward: str = "angry", base: str = "neutral") -> np.ndarray:
    """Probabilities over EMOTIONS: ``share`` of ``toward``, the rest ``base`` (a small floor on every class)."""
    p = np.full(len(EMOTIONS), 0.01)
    p[EMOTIONS.index(toward)] += share
    p[EMOTIONS.index(base)] += 1.0 - share
    return p / p.sum()


def for_escalation(target: float, toward: str = "angry") -> np.ndarray:
    """Probabilities whose escalation score (edge.policy.fusion) is ``target`` (bisection over the angry share)."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if escalation_score(blend(mid, toward)) < target else (lo, mid)
    return blend((lo + hi) / 2, toward)


# The demo's 60 s cycle, aligned with edge.demo.media's media (a customer at the counter 3-38 s and 48-58 s).
DEMO_CYCLE_S = 60.0
DEMO_SCRIPT: tuple[tuple[float, float, Callable[[float], np.ndarray] | None], ...] = (
    (0.0, 3.0, None),                                                      # nobody yet
    (3.0, 9.0, lambda u: blend(0.02)),                                     # "Good morning, an account please"
    (9.0, 14.0, lambda u: for_escalation(0.1 + 0.45 * u)),                 # "waiting for forty minutes": rising
    (14.0, 24.0, lambda u: for_escalation(0.75)),                          # "not acceptable, a manager!": alert
    (24.0, 38.0, lambda u: for_escalation(max(0.05, 0.5 - 1.8 * u))),      # staff handled it: calming down
    (38.0, 48.0, None),                                                    # the customer left: the visit ends
    (48.0, 58.0, lambda u: blend(0.7, "sad")),                             # a subdued, sad customer: care
    (58.0, 60.0, None),
)


def demo_timeline(t: float) -> np.ndarray | None:
    """The demo customer's feelings at ``t`` seconds into the loop (None: nobody at the counter)."""
    c = t % DEMO_CYCLE_S
    for start, end, fn in DEMO_SCRIPT:
        if start <= c < end:
            return None if fn is None else fn((c - start) / (end - start))
    return None


@dataclass
class _Clock:
    """The time of the first reading, shared by face and voice so both follow one script."""

    t0: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, t: float) -> float:
        with self.lock:
            if self.t0 is None:
                self.t0 = t
            return t - self.t0


class ScriptedFace:
    """Stands in for FaceAnalyzer: the script's probabilities for the frame's time; None when nobody is there."""

    def __init__(self, timeline: Timeline, clock: _Clock | None = None, confidence: float = 0.8) -> None:
        """``timeline`` maps seconds since the first frame to probabilities."""
        self.timeline, self.clock, self.confidence = timeline, clock or _Clock(), confidence

    def analyze(self, frame: Frame) -> Reading | None:
        """The scripted reading at ``frame.t`` (the pixels are not looked at)."""
        p = self.timeline(self.clock.since(frame.t))
        return None if p is None else Reading("face", frame.t, np.asarray(p, np.float64), self.confidence)


class ScriptedVoice:
    """Stands in for VoiceAnalyzer: the script's probabilities while the customer is there (the audio is not used)."""

    window_s = 2.0

    def __init__(self, timeline: Timeline, clock: _Clock | None = None, confidence: float = 0.6) -> None:
        """``timeline`` maps seconds since the first reading to probabilities."""
        self.timeline, self.clock, self.confidence = timeline, clock or _Clock(), confidence

    def analyze(self, samples: np.ndarray, t: float, end: int | None = None) -> Reading | None:
        """The scripted reading at ``t``."""
        p = self.timeline(self.clock.since(t))
        return None if p is None else Reading("voice", t, np.asarray(p, np.float64), self.confidence)


def scripted_analyzers(timeline: Timeline = demo_timeline, face: bool = True, voice: bool = True) -> Analyzers:
    """Analyzers that follow ``timeline``; their versions say SCRIPTED wherever the kiosk reports models."""
    clock = _Clock()
    log.warning("SCRIPTED READINGS: the face and voice models are not run; readings follow a script (demo mode)")
    return Analyzers(face=ScriptedFace(timeline, clock) if face else None,  # type: ignore[arg-type]
                     voice=ScriptedVoice(timeline, clock) if voice else None,  # type: ignore[arg-type]
                     versions={k: SCRIPTED for k, on in (("face_expression", face), ("voice_emotion", voice)) if on})
