"""Speech gating over webrtcvad (30 ms frames of 16-bit PCM) plus a level-modulation check.

webrtcvad alone calls any loud broadband noise "speech" (measured: white or pink noise at -20 dBFS is
100 % speech at every aggressiveness). A frame therefore also has to rise ``margin_db`` above the
window's noise floor (10th percentile of frame levels): speech is strongly level-modulated (syllables,
pauses), stationary noise, hum and fans are not.
"""

from __future__ import annotations

import logging

import numpy as np
import webrtcvad

from edge.voice.features import SAMPLE_RATE, frame_rms_db

log = logging.getLogger(__name__)

FRAME_MS = 30
FRAME = SAMPLE_RATE * FRAME_MS // 1000  # 480 samples
# webrtcvad's fixed-point energy thresholds lose speech only a few LSB high (RAVDESS's quietest clips shifted by
# -20 dB: -67 to -80 dBFS, 0-6 % of frames flagged): a quiet window is raised for it, its loudest frames (95th
# percentile) to PRE_DBFS, by at most MAX_PRE_DB; a window already that loud is passed as it is
PRE_DBFS = -30.0
MAX_PRE_DB = 30.0


class Vad:
    """Voice activity detector: per-30 ms-frame speech mask, speech ratio and speech-only samples."""

    def __init__(self, aggressiveness: int = 2, margin_db: float = 6.0, floor_dbfs: float = -90.0) -> None:
        """``aggressiveness`` 0-3 is webrtcvad's; ``margin_db`` is the required rise over the noise floor."""
        if not 0 <= int(aggressiveness) <= 3:
            raise ValueError(f"VAD aggressiveness must be 0..3, got {aggressiveness}")
        # one webrtcvad kept across windows, as the shipped voice model's training features were made: a fresh one per
        # window (tried 2026-12-05) had no time to adapt to quiet speech and lost it (RAVDESS at -20 dB: 82 of 120
        # clips with a reading instead of 111; models/README.md)
        self._vad = webrtcvad.Vad(int(aggressiveness))
        self.aggressiveness = int(aggressiveness)
        self.margin_db = float(margin_db)
        self.floor_dbfs = float(floor_dbfs)

    def speech_mask(self, samples: np.ndarray) -> np.ndarray:
        """Boolean speech flag per consecutive 30 ms frame (trailing partial frame ignored)."""
        x = np.asarray(samples, dtype=np.float32)
        n = x.size // FRAME
        if n == 0:
            return np.zeros(0, dtype=bool)
        # without the window's DC offset: a microphone's constant offset lifted every frame's level alike, so speech
        # no longer rose above the floor and a DC of 0.01 lost most windows of quiet speech (the gate and the
        # Whisper features remove it too)
        x = x[: n * FRAME] - np.float32(x[: n * FRAME].mean(dtype=np.float64))
        db = frame_rms_db(x, FRAME)
        pre = np.float32(10.0 ** (min(max(PRE_DBFS - float(np.percentile(db, 95)), 0.0), MAX_PRE_DB) / 20.0))
        pcm = (np.clip(x * pre, -1.0, 1.0) * 32767.0).astype("<i2")
        raw = pcm.tobytes()
        step = FRAME * 2
        vad = np.fromiter(
            (self._vad.is_speech(raw[i * step:(i + 1) * step], SAMPLE_RATE) for i in range(n)), dtype=bool, count=n
        )
        noise_floor = float(np.percentile(db, 10))
        loud = (db > noise_floor + self.margin_db) & (db > self.floor_dbfs)
        return vad & loud

    def speech_ratio(self, samples: np.ndarray) -> float:
        """Fraction of 30 ms frames flagged as speech (0.0 for input shorter than one frame)."""
        mask = self.speech_mask(samples)
        return float(mask.mean()) if mask.size else 0.0

    def speech_only(self, samples: np.ndarray) -> np.ndarray:
        """Concatenation of the speech frames only (empty float32 array when there are none)."""
        x = np.asarray(samples, dtype=np.float32)
        mask = self.speech_mask(x)
        if not mask.any():
            return np.zeros(0, dtype=np.float32)
        frames = x[: mask.size * FRAME].reshape(mask.size, FRAME)
        return frames[mask].reshape(-1).copy()

    def speech_span(self, samples: np.ndarray) -> tuple[int, int] | None:
        """(first, last+1) sample index of the speech frames, or None when there is no speech."""
        idx = np.flatnonzero(self.speech_mask(samples))
        if idx.size == 0:
            return None
        return int(idx[0]) * FRAME, int(idx[-1] + 1) * FRAME
