"""VoiceAnalyzer: VAD-gated voice-emotion readings from the int8 log-mel CNN."""

from __future__ import annotations

import logging

import numpy as np

from edge.runtime import Model, ModelError
from edge.types import EMOTIONS, Reading
from edge.voice.features import SAMPLE_RATE, fit_length
from edge.voice.frontends import make_frontend
from edge.voice.vad import Vad

log = logging.getLogger(__name__)

# Model outputs that are not product emotions but fold into one: RAVDESS "calm" (a model trained on the corpus'
# 8 native classes) is counted as neutral.
FOLDED: dict[str, str] = {"calm": "neutral"}


def label_index_map(labels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Index into EMOTIONS of each declared model output label (FOLDED ones included); ModelError if unknown."""
    out = []
    for lab in labels:
        if lab not in EMOTIONS and lab not in FOLDED:
            raise ModelError(f"voice model label {lab!r} is not a product emotion {EMOTIONS} nor one of {FOLDED}")
        out.append(EMOTIONS.index(FOLDED.get(lab, lab)))
    if len(set(labels)) != len(labels):
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
        self.frontend = make_frontend(getattr(model.spec, "features", "") or "logmel64", shape)
        labels = model.spec.labels
        if len(labels) != int(np.prod(model.spec.output.shape)):
            raise ModelError(f"voice model declares {len(labels)} labels for output {model.spec.output.shape}")
        self.model = model
        self.frames = int(shape[1])
        self.min_speech_ratio = float(min_speech_ratio)
        self.vad = Vad(vad_aggressiveness)
        self._map = label_index_map(labels)

    def reset(self) -> None:
        """Start a new audio stream (a replayed file, an evaluated clip) with a fresh VAD state."""
        # webrtcvad adapts to what it has heard: without this, a stream's readings depend on the one before it
        v = self.vad
        self.vad = Vad(v.aggressiveness, v.margin_db, v.floor_dbfs)
        self.frontend.reset()

    @property
    def window_samples(self) -> int:
        """Analysis window in samples the model's frames span (the front end's rule; 32000 for both shipped ones)."""
        return self.frontend.window_samples(self.frames)

    @property
    def window_s(self) -> float:
        """Analysis window length in seconds the model expects (derived from its input frames)."""
        return self.window_samples / SAMPLE_RATE

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's own output labels (manifest order), e.g. with ``calm`` before it is folded."""
        return tuple(self.model.spec.labels)

    def model_probs(self, samples: np.ndarray, end: int | None = None) -> np.ndarray:
        """Probabilities over the model's own labels for one window (no VAD gating); see ``analyze`` for ``end``."""
        n = self.window_samples
        whole = end is not None and np.asarray(samples).size >= n
        feats = self.frontend.features(fit_length(samples, n), int(end) if whole and end is not None else None)
        x = feats.reshape(self.model.input_shape).astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("voice features are not finite (non-finite samples in the window)")
        return _softmax_if_needed(self.model.infer(x))

    def fold(self, p_model: np.ndarray) -> np.ndarray:
        """Model-label probabilities -> probabilities over EMOTIONS (FOLDED labels summed into their class)."""
        out = np.zeros(len(EMOTIONS), dtype=np.float64)
        np.add.at(out, self._map, np.asarray(p_model, dtype=np.float64))
        return (out / max(float(out.sum()), 1e-12)).astype(np.float32)

    def probs(self, samples: np.ndarray) -> np.ndarray:
        """Model probabilities over EMOTIONS for one window (no VAD gating)."""
        return self.fold(self.model_probs(samples))

    @staticmethod
    def _confidence(probs: np.ndarray, speech_ratio: float) -> float:
        """1 - normalised entropy, scaled down when under half of the window is speech; in [0, 1]."""
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
        ent = float(-(p * np.log(p)).sum() / np.log(p.size))
        return float(np.clip((1.0 - ent) * min(1.0, speech_ratio / 0.5), 0.0, 1.0))

    def _window(self, samples: np.ndarray, t: float, end: int | None = None) -> tuple[np.ndarray, float] | None:
        """(model-label probabilities, speech ratio) of the last window_s seconds, None without enough speech."""
        x = fit_length(samples, self.window_samples)
        if not np.all(np.isfinite(x)):  # one inf would make every feature NaN and the int8 model read anything
            log.debug("voice window at t=%.2f: samples that are not finite, no reading", t)
            return None
        ratio = self.vad.speech_ratio(x)
        if ratio < self.min_speech_ratio:
            log.debug("voice window at t=%.2f: speech ratio %.2f < %.2f, no reading", t, ratio, self.min_speech_ratio)
            return None
        return self.model_probs(x, end), ratio

    def analyze(self, samples: np.ndarray, t: float, end: int | None = None) -> Reading | None:
        """Reading for the last window_s seconds of audio, or None when the VAD finds too little speech.

        ``end``: the stream position (sample count) just after ``samples``; given, consecutive overlapping windows
        of one stream reuse each other's mel frames (``StreamFeatures``), otherwise the window is computed whole.
        """
        win = self._window(samples, t, end)
        if win is None:
            return None
        p = self.fold(win[0])
        return Reading(modality="voice", t=float(t), probs=p, confidence=self._confidence(p, win[1]),
                       extra={"speech_ratio": win[1]})

    def clip_model_probs(self, samples: np.ndarray, hop_s: float = 0.5) -> tuple[np.ndarray, float, int] | None:
        """Clip level over the model's own labels: (speech-weighted mean probabilities, mean ratio, windows)."""
        x = np.asarray(samples, dtype=np.float32)
        n = self.window_samples
        hop = max(1, int(round(hop_s * SAMPLE_RATE)))
        ends = list(range(n, x.size + 1, hop)) or [x.size]
        if ends[-1] != x.size:
            ends.append(x.size)
        self.frontend.reset()  # the clip is its own stream; its windows share mel frames as in the service
        wins = [win for e in ends if (win := self._window(x[max(0, e - n):e], 0.0, end=e)) is not None]
        if not wins:
            return None
        w = np.array([r for _, r in wins], dtype=np.float64)
        p = (np.stack([pm for pm, _ in wins]).astype(np.float64) * w[:, None]).sum(0) / w.sum()
        return p / p.sum(), float(w.mean()), len(wins)

    def analyze_clip(self, samples: np.ndarray, hop_s: float = 0.5, t: float = 0.0) -> Reading | None:
        """Clip-level reading: slide windows (hop ``hop_s``) over the clip and average the gated ones."""
        clip = self.clip_model_probs(samples, hop_s)
        if clip is None:
            return None
        probs = self.fold(clip[0])
        return Reading(modality="voice", t=float(t), probs=probs, confidence=self._confidence(probs, clip[1]),
                       extra={"speech_ratio": clip[1], "windows": float(clip[2])})
