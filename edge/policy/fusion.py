"""Fuse face and voice readings into one smoothed customer state (pure logic, caller supplies time)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.config import FusionConfig
from edge.types import AGITATED, EMOTIONS, Reading, valence_arousal

MODALITIES = ("face", "voice")
_AGITATED_IDX = [EMOTIONS.index(e) for e in AGITATED]
_HAPPY = EMOTIONS.index("happy")


@dataclass
class ModalityTrack:
    """Exponentially smoothed probabilities and confidence of one modality."""

    probs: np.ndarray = field(default_factory=lambda: np.full(len(EMOTIONS), 1.0 / len(EMOTIONS)))
    confidence: float = 0.0
    last_t: float | None = None

    def update(self, r: Reading, half_life_s: float) -> bool:
        """Blend a new reading in, weighting by elapsed time and the reading's own confidence; False (and nothing
        changed) for a reading that is not finite or not one probability per class: one bad value must not blind
        the track for the rest of the visit."""
        p = np.asarray(r.probs, dtype=np.float64)
        if (p.shape != (len(EMOTIONS),) or not np.all(np.isfinite(p)) or (p < 0).any()
                or not np.isfinite(r.confidence) or not np.isfinite(r.t)):
            return False
        p = p / p.sum() if p.sum() > 0 else np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))
        conf = float(np.clip(r.confidence, 0.0, 1.0))
        if self.last_t is None or abs(r.t - self.last_t) > 4 * half_life_s:  # a gap, or a track stamped ahead
            self.probs, self.confidence, self.last_t = p, conf, r.t  # (one reading far in the future froze it)
            return True
        else:
            alpha = 1.0 - 0.5 ** (max(r.t - self.last_t, 0.0) / half_life_s)
            a = alpha * (0.25 + 0.75 * conf)  # an unsure reading moves the state less
            self.probs = (1 - a) * self.probs + a * p
            self.confidence = (1 - alpha) * self.confidence + alpha * conf
        self.last_t = max(r.t, self.last_t)
        return True

    def freshness(self, now: float, stale_after_s: float) -> float:
        """1.0 for a reading just now, falling linearly to 0 at ``stale_after_s``."""
        if self.last_t is None:
            return 0.0
        return float(np.clip(1.0 - (now - self.last_t) / stale_after_s, 0.0, 1.0))


@dataclass(frozen=True)
class ModalityState:
    """How one modality contributed to a fused state."""

    used: bool
    confidence: float
    age_s: float | None
    agitated: float = 0.0  # smoothed probability share of AGITATED classes in this modality alone


@dataclass(frozen=True)
class FusedState:
    """The customer's fused, smoothed state at time ``t``."""

    t: float
    probs: np.ndarray
    label: str
    valence: float
    arousal: float
    escalation: float
    confidence: float
    modalities: dict[str, ModalityState]
    voice_led: bool = False  # the escalation is the voice's own (fusion.voice_arousal), above the fused estimate


def escalation_score(probs: np.ndarray) -> float:
    """Negativity/escalation in [0, 1]: mostly agitated mass, plus negative valence weighted by arousal."""
    p = np.asarray(probs, dtype=np.float64)
    agitated = float(p[_AGITATED_IDX].sum())
    v, a = valence_arousal(p)
    negativity = min(max(0.0, -v) / 0.7, 1.0)  # 0.7 = the most negative class valence
    return float(np.clip(0.7 * agitated + 0.3 * negativity * (a + 1.0) / 2.0, 0.0, 1.0))


class Fusion:
    """Confidence- and freshness-weighted late fusion over smoothed per-modality tracks."""

    def __init__(self, cfg: FusionConfig, voice_gap_s: float = 0.25) -> None:
        """Start with no evidence; ``voice_gap_s``: the time between two voice readings of ongoing speech (the
        analysis hop)."""
        self.cfg = cfg
        self.voice_gap_s = voice_gap_s
        self.tracks: dict[str, ModalityTrack] = {m: ModalityTrack() for m in MODALITIES}
        self.ignored = 0  # readings left out because a value was not finite or the shape was wrong

    def reset(self) -> None:
        """Forget everything (a visit ended)."""
        self.tracks = {m: ModalityTrack() for m in MODALITIES}

    def update(self, reading: Reading) -> None:
        """Add one modality reading."""
        if reading.modality not in self.tracks:
            raise ValueError(f"unknown modality {reading.modality!r}")
        voice = reading.modality == "voice"
        if not self.tracks[reading.modality].update(reading,
                                                    self.cfg.voice_half_life_s if voice else self.cfg.half_life_s):
            self.ignored += 1  # not finite or mis-shaped: left out, counted

    def _weight(self, name: str) -> float:
        return self.cfg.face_weight if name == "face" else self.cfg.voice_weight

    def state(self, now: float) -> FusedState | None:
        """Fused state at ``now``, or None when no modality is fresh."""
        weights, mods = {}, {}
        for name, tr in self.tracks.items():
            fresh = tr.freshness(now, self.cfg.stale_after_s)
            w = self._weight(name) * tr.confidence * fresh
            weights[name] = w if w > 1e-6 else 0.0
            mods[name] = ModalityState(used=w > 0, confidence=round(tr.confidence * fresh, 4),
                                       age_s=None if tr.last_t is None else round(max(now - tr.last_t, 0.0), 3),
                                       agitated=round(float(tr.probs[_AGITATED_IDX].sum()), 4))
        total = sum(weights.values())
        if total <= 0:
            return None
        probs = sum(weights[n] * self.tracks[n].probs for n in self.tracks)
        probs = np.asarray(probs) / float(np.sum(probs))
        # Confidence: what the fresh modalities support, out of what all configured modalities could.
        max_total = sum(self._weight(n) for n in self.tracks) or 1.0
        confidence = float(np.clip(total / max_total, 0.0, 1.0))
        v, a = valence_arousal(probs)
        fused, voice = escalation_score(probs), self._voice_escalation(now, weights)
        return FusedState(
            t=now, probs=np.asarray(probs), label=EMOTIONS[int(np.argmax(probs))], valence=v, arousal=a,
            escalation=max(fused, voice), confidence=confidence, modalities=mods, voice_led=voice > fused,
        )

    def _voice_escalation(self, now: float, weights: dict[str, float]) -> float:
        """The voice's own escalation, discounted by a smiling face; 0 when off or without fresh speech.

        Voices carry arousal and faces valence: an agitated voice behind a neutral face is still agitated (people
        mask their faces at a counter far more than their voices), but loud and smiling is not upset.
        """
        if not self.cfg.voice_arousal or weights["voice"] <= 0:
            return 0.0
        face, voice = self.tracks["face"], self.tracks["voice"]
        happy = float(face.probs[_HAPPY]) * face.freshness(now, self.cfg.stale_after_s) if weights["face"] > 0 else 0.0
        # Fading once no new reading came for one analysis hop (the speaker fell silent): a reading seconds old no
        # longer holds the level up on its own; ongoing speech, a reading every hop, keeps it whole.
        age = 0.0 if voice.last_t is None else max(now - voice.last_t - self.voice_gap_s, 0.0)
        fresh = float(np.clip(1.0 - age / self.cfg.stale_after_s, 0.0, 1.0))
        return escalation_score(voice.probs) * fresh * (1.0 - self.cfg.happy_face_discount * happy)
