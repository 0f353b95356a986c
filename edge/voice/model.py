"""VoiceAnalyzer: VAD-gated voice-emotion readings from the int8 log-mel CNN."""

from __future__ import annotations

import logging

import numpy as np

from edge.runtime import Model, ModelError
from edge.types import EMOTIONS, Reading
from edge.voice.features import HOP, N_MELS, SAMPLE_RATE, WIN, fit_length, window_features
from edge.voice.vad import Vad

log = logging.getLogger(__name__)


def label_index_map(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Index into EMOTIONS of each declared model output label; raises ModelError on an unknown label."""
    out = []
    for lab in labels:
        if lab not in EMOTIONS:
            raise ModelError(f"voice model label {lab!r} is not a product emotion {EMOTIONS}")
        out.append(EMOTIONS.index(lab))
    if len(set(out)) != len(out):
        raise ModelError(f"voice model labels repeat a class: {labels}")
    return np.asarray(out, dtype=np.int64)


def _softmax_if_needed(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    is_softmax = y.min() >= -1e-3 and abs(float(y.sum()) - 1.0) < 0.05
    p = np.clip(y, 0.0, None) if is_softmax else np.exp(y - y.max())  # dequantized softmax or logits
    s = float(p.sum())
    return p / s if s > 0 else np.full(p.size, 1.0 / p.size)


class VoiceAnalyzer:
    """Turns the last ``window_s`` seconds of 16 kHz mono audio into a voice Reading, or None without speech."""

    def __init__(self, model: Model, min_speech_ratio: float = 0.3, vad_aggressiveness: int = 2) -> None:
        """Bind a loaded voice_emotion Model; labels are mapped onto EMOTIONS by name from the manifest."""
        shape = tuple(model.input_shape)
        if len(shape) < 3 or shape[2] != N_MELS:
            raise ModelError(f"voice model input {shape} is not (1, frames, {N_MELS}[, 1])")
        labels = model.spec.labels
        if len(labels) != int(np.prod(model.spec.output.shape)):
            raise ModelError(f"voice model declares {len(labels)} labels for output {model.spec.output.shape}")
        self.model = model
        self.frames = int(shape[1])
        self.min_speech_ratio = float(min_speech_ratio)
        self.vad = Vad(vad_aggressiveness)
        self._map = label_index_map(labels)

    @property
    def window_samples(self) -> int:
        """Analysis window in samples: the frames' span rounded up to whole hops (198 frames -> 32000)."""
        span = (self.frames - 1) * HOP + WIN
        return -(-span // HOP) * HOP

    @property
    def window_s(self) -> float:
        """Analysis window length in seconds the model expects (derived from its input frames)."""
        return self.window_samples / SAMPLE_RATE

    def probs(self, samples: np.ndarray) -> np.ndarray:
        """Model probabilities over EMOTIONS for one window (no VAD gating)."""
        feats = window_features(samples, self.window_s)
        x = feats.reshape(self.model.input_shape).astype(np.float32)
        p_model = _softmax_if_needed(self.model.infer(x))
        out = np.zeros(len(EMOTIONS), dtype=np.float64)
        out[self._map] = p_model
        return (out / max(float(out.sum()), 1e-12)).astype(np.float32)

    @staticmethod
    def _confidence(probs: np.ndarray, speech_ratio: float) -> float:
        """1 - normalised entropy, scaled down when under half of the window is speech; in [0, 1]."""
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
        ent = float(-(p * np.log(p)).sum() / np.log(p.size))
        return float(np.clip((1.0 - ent) * min(1.0, speech_ratio / 0.5), 0.0, 1.0))

    def analyze(self, samples: np.ndarray, t: float) -> Reading | None:
        """Reading for the last window_s seconds of audio, or None when the VAD finds too little speech."""
        x = fit_length(samples, self.window_samples)
        ratio = self.vad.speech_ratio(x)
        if ratio < self.min_speech_ratio:
            log.debug("voice window at t=%.2f: speech ratio %.2f < %.2f, no reading", t, ratio, self.min_speech_ratio)
            return None
        p = self.probs(x)
        return Reading(modality="voice", t=float(t), probs=p, confidence=self._confidence(p, ratio),
                       extra={"speech_ratio": ratio})

    def analyze_clip(self, samples: np.ndarray, hop_s: float = 0.5, t: float = 0.0) -> Reading | None:
        """Clip-level reading: slide windows (hop ``hop_s``) over the clip and average the gated ones."""
        x = np.asarray(samples, dtype=np.float32)
        n = self.window_samples
        hop = max(1, int(round(hop_s * SAMPLE_RATE)))
        ends = list(range(n, x.size + 1, hop)) or [x.size]
        if ends[-1] != x.size:
            ends.append(x.size)
        readings = [r for e in ends if (r := self.analyze(x[max(0, e - n):e], t)) is not None]
        if not readings:
            return None
        w = np.array([r.extra["speech_ratio"] for r in readings], dtype=np.float64)
        p = (np.stack([r.probs for r in readings]).astype(np.float64) * w[:, None]).sum(0) / w.sum()
        ratio = float(w.mean())
        probs = (p / p.sum()).astype(np.float32)
        return Reading(modality="voice", t=float(t), probs=probs, confidence=self._confidence(probs, ratio),
                       extra={"speech_ratio": ratio, "windows": float(len(readings))})
