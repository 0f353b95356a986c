"""Whisper-style log-mel features (numpy only), the input of the Whisper-encoder voice model.

One 2 s window (32,000 samples at 16 kHz) -> (200, 80): the waveform is scaled to zero mean and unit variance (so the
features do not depend on microphone gain), reflect-padded by half an FFT, framed with a 25 ms periodic Hann window and
a 10 ms hop, projected on 80 Slaney-normalised mel bands (0-8 kHz), ``log10`` with a 1e-10 floor, limited to 8 decades
below the window's maximum and scaled ``(x + 4) / 4`` — the transform Whisper's encoder was trained on. The last frame
is dropped, so a window of N samples gives N / 160 frames.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
_FLOOR = 1e-10
_VAR_EPS = 1e-7


def _hz_to_slaney(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = 3.0 * f / 200.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4), lin)


def _slaney_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of ``_hz_to_slaney``."""
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0), 200.0 * m / 3.0)


def slaney_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Area-normalised triangular filters, shape (n_fft // 2 + 1, n_mels), float32."""
    edges = _slaney_to_hz(np.linspace(_hz_to_slaney(np.array(0.0)), _hz_to_slaney(np.array(rate / 2.0)), n_mels + 2))
    bins = np.linspace(0.0, rate / 2.0, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rise = (bins[:, None] - lo[None, :]) / (mid - lo)[None, :]
    fall = (hi[None, :] - bins[:, None]) / (hi - mid)[None, :]
    fb = np.maximum(0.0, np.minimum(rise, fall)) * (2.0 / (hi - lo))[None, :]
    return fb.astype(np.float32)


_FB = slaney_filterbank()
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def whisper_log_mel(samples: np.ndarray) -> np.ndarray:
    """(len // 160, 80) float32 Whisper log-mel frames of one window of 16 kHz mono samples."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size < N_FFT:
        raise ValueError(f"a window needs at least {N_FFT} samples, got {x.size}")
    x = (x - x.mean()) / np.sqrt(x.var() + _VAR_EPS)
    pad = N_FFT // 2
    xp = np.pad(x, (pad, pad), mode="reflect")
    n = 1 + (xp.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(xp[idx] * _WINDOW, axis=1)) ** 2
    mel = np.log10(np.maximum(spec.astype(np.float32) @ _FB, _FLOOR))[:-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)
