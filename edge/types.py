"""Shared value types and label vocabulary that every pipeline stage speaks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The product's emotion classes, in this order everywhere (model outputs are mapped onto it).
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")

# Circumplex coordinates (valence, arousal) in [-1, 1] per class, after Russell (1980) and the
# FER/ RAVDESS literature's usual placement. Valence/arousal of a reading is the probability-weighted mean.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "surprise": (0.2, 0.8),
    "sad": (-0.7, -0.4),
    "angry": (-0.7, 0.8),
    "disgust": (-0.6, 0.4),
    "fear": (-0.6, 0.7),
}

# Classes whose probability mass counts as "agitated" (negative, high-arousal).
AGITATED: tuple[str, ...] = ("angry", "disgust", "fear")


def valence_arousal(probs: np.ndarray) -> tuple[float, float]:
    """Probability-weighted circumplex coordinates of a distribution over EMOTIONS."""
    coords = np.array([CIRCUMPLEX[e] for e in EMOTIONS], dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    s = float(p.sum())
    if s <= 0:
        return 0.0, 0.0
    v, a = (p / s) @ coords
    return float(v), float(a)


@dataclass(frozen=True)
class Frame:
    """One camera frame: BGR uint8 pixels, capture time (monotonic seconds) and sequence number."""

    image: np.ndarray
    t: float
    seq: int


@dataclass(frozen=True)
class AudioBlock:
    """A block of mono float32 samples in [-1, 1] at ``rate`` Hz; ``t`` is the time of the last sample."""

    samples: np.ndarray
    t: float
    rate: int = 16000


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixel coordinates with detector score and optional keypoints [(x, y), ...]."""

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def center(self) -> tuple[float, float]:
        """Centre of the box in pixels."""
        return self.x + self.w / 2.0, self.y + self.h / 2.0


@dataclass(frozen=True)
class Reading:
    """One modality's judgement at time ``t``: probabilities over EMOTIONS plus confidence in [0, 1]."""

    modality: str  # "face" | "voice"
    t: float
    probs: np.ndarray
    confidence: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def valence_arousal(self) -> tuple[float, float]:
        """Circumplex coordinates of this reading."""
        return valence_arousal(self.probs)
