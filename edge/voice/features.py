"""The one log-mel feature implementation shared by training and runtime (numpy only).

Pipeline for one analysis window (``window_features``):

1. ``normalize_gain``: find the active-speech frames by energy (30 ms frames within 30 dB of the
   window's loudest 5 % of frames and above an absolute floor) and scale the whole window so their RMS is
   ``TARGET_DBFS`` (-26 dBFS). Corpora and kiosk microphones differ by ~20 dB; without this a model
   learns loudness as arousal and does not transfer. The gain is capped at ``MAX_GAIN_DB`` so near-silence
   is not blown up to speech level.
2. ``log_mel``: 25 ms Hann window, 10 ms hop, 512-point FFT, 64 HTK mel bands 50-7600 Hz, power spectrum,
   ``log(mel + 1e-6)`` then a *fixed* affine scaling ``(x - LOG_OFFSET) / LOG_SCALE`` (no per-window
   statistics, so silence stays distinguishable from speech and features are causal/stateless).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 64
FMIN, FMAX = 50.0, 7600.0
TARGET_DBFS = -26.0
MAX_GAIN_DB = 40.0
ACTIVE_FLOOR_DBFS = -70.0  # frames quieter than this are never "active speech"
LOG_OFFSET = -6.0
LOG_SCALE = 4.0
_EPS = 1e-6


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular HTK-style mel filterbank, shape (n_fft // 2 + 1, n_mels), float32."""
    mels = np.linspace(_hz_to_mel(np.array(FMIN)), _hz_to_mel(np.array(FMAX)), n_mels + 2)
    hz = _mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    fb = np.zeros((bins.size, n_mels), dtype=np.float64)
    for i in range(n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / max(mid - lo, 1e-9)
        down = (hi - bins) / max(hi - mid, 1e-9)
        fb[:, i] = np.maximum(0.0, np.minimum(up, down))
    return fb.astype(np.float32)


_FB = mel_filterbank()
_WINDOW = np.hanning(WIN + 1)[:-1].astype(np.float32)


def frame_rms_db(samples: np.ndarray, frame: int = 480) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (default 30 ms)."""
    x = np.asarray(samples, dtype=np.float32)
    n = x.size // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    fr = x[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(fr * fr, axis=1) + 1e-12)
    return (20.0 * np.log10(rms + 1e-12)).astype(np.float32)


def active_level_dbfs(samples: np.ndarray) -> float | None:
    """RMS level (dBFS) of the energy-active frames without the signal's DC offset, or None when nothing rises above
    the floor."""
    x = np.asarray(samples, dtype=np.float32)
    db = frame_rms_db(x - np.float32(x.mean(dtype=np.float64)) if x.size else x)
    if db.size == 0:
        return None
    top = float(np.percentile(db, 95))
    active = (db > top - 30.0) & (db > ACTIVE_FLOOR_DBFS)
    if not active.any():
        return None
    power = 10.0 ** (db[active].astype(np.float64) / 10.0)
    return float(10.0 * np.log10(power.mean()))


def gain_linear(samples: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.float32 | None:
    """Linear gain that brings the active frames' RMS to ``target_dbfs`` (capped), None without active frames."""
    level = active_level_dbfs(np.asarray(samples, dtype=np.float32))
    if level is None:
        return None
    return np.float32(10.0 ** (min(target_dbfs - level, MAX_GAIN_DB) / 20.0))


def normalize_gain(samples: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale so the active frames' RMS is ``target_dbfs`` (gain capped at +MAX_GAIN_DB); float32, clipped."""
    x = np.asarray(samples, dtype=np.float32)
    g = gain_linear(x, target_dbfs)
    if g is None:
        return x.copy()
    return np.clip(x * g, -1.0, 1.0).astype(np.float32)


def n_frames(n_samples: int) -> int:
    """Number of log-mel frames ``log_mel`` yields for ``n_samples`` samples."""
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def mel_power(samples: np.ndarray) -> np.ndarray:
    """Mel-band power of each 25 ms frame (10 ms hop), float32 (frames, N_MELS); frames are independent."""
    x = np.asarray(samples, dtype=np.float32)
    n = n_frames(x.size)
    if n == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx] * _WINDOW
    spec = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).astype(np.float32) ** 2
    return spec @ _FB


def log_scale(mel: np.ndarray) -> np.ndarray:
    """Mel power -> the model's fixed-scaled log-mel values, float32."""
    return ((np.log(mel + _EPS) - LOG_OFFSET) / LOG_SCALE).astype(np.float32)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Fixed-scaled log-mel spectrogram, float32 (frames, N_MELS); no gain normalisation here."""
    return log_scale(mel_power(samples))


def fit_length(samples: np.ndarray, n: int) -> np.ndarray:
    """Left-pad with zeros or keep the last ``n`` samples (the runtime sees the most recent audio)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size >= n:
        return x[x.size - n:]
    return np.concatenate([np.zeros(n - x.size, dtype=np.float32), x])


def window_features(samples: np.ndarray, window_s: float) -> np.ndarray:
    """Model input for one analysis window: length-fit, gain-normalise, log-mel -> (frames, N_MELS)."""
    x = fit_length(samples, int(round(window_s * SAMPLE_RATE)))
    return log_mel(normalize_gain(x))
