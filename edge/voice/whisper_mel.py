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


# The periodic Hann window's spectrum is non-zero only at bins 0 and 1 (and N-1): removing a window's mean from the
# samples changes a frame's spectrum there alone, so the mel power of raw frames can be shared between windows.
_W01 = np.fft.rfft(_WINDOW.astype(np.float64))[:2]
_EDGE_FRAMES = (0, 1)  # frames reaching into the left reflection; the last frames reach into the right one


class WhisperStream:
    """``whisper_log_mel`` for consecutive overlapping windows of one stream, sharing the raw frames' mel power.

    Interior frames (those not touching the reflect padding) depend on the window only through its mean and
    variance; their mel power and bins 0-1 are cached per stream position and corrected per window. Equal to
    ``whisper_log_mel`` up to float32 rounding (tested)."""

    def __init__(self) -> None:
        """An empty cache; ``frames_reused`` counts interior frames taken from the cache."""
        self.frames_reused = 0
        self.reset()

    def reset(self) -> None:
        """Forget the cache (a new stream)."""
        self._x: np.ndarray | None = None
        self._start = 0
        self._mel: np.ndarray | None = None  # (frames, N_MELS) float64 raw mel power per frame of the last window
        self._x01: np.ndarray | None = None  # (frames, 2) complex128 raw spectrum bins 0-1

    def _raw(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mel power, bins 0-1) of raw (unnormalised) windowed frames."""
        spec = np.fft.rfft(frames.astype(np.float64) * _WINDOW, axis=1)
        return (np.abs(spec) ** 2) @ _FB.astype(np.float64), spec[:, :2]

    def features(self, x: np.ndarray, start: int) -> np.ndarray:
        """(len // 160, 80) features of the window ``x`` whose first sample is sample ``start`` of the stream."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        n = x.size // HOP  # frames kept (the reference drops its last one)
        pad = N_FFT // 2
        first, last = len(_EDGE_FRAMES), (x.size - pad) // HOP  # interior frames: first .. last - 1
        mel = np.empty((last - first, N_MELS), np.float64)
        x01 = np.empty((last - first, 2), np.complex128)
        shift = start - self._start
        reuse = 0
        if self._x is not None and self._mel is not None and self._x01 is not None and shift >= 0 \
                and shift % HOP == 0 and shift < self._x.size \
                and np.array_equal(self._x[shift:], x[:self._x.size - shift]):
            k = shift // HOP  # old interior row i holds the frame new row i - k holds
            reuse = max(0, self._mel.shape[0] - k)
            mel[:reuse], x01[:reuse] = self._mel[k:k + reuse], self._x01[k:k + reuse]
        if reuse < mel.shape[0]:
            idx = np.arange(N_FFT)[None, :] + HOP * np.arange(first + reuse, last)[:, None] - pad
            mel[reuse:], x01[reuse:] = self._raw(x[idx])
        self.frames_reused += reuse
        self._x, self._start, self._mel, self._x01 = x.copy(), int(start), mel, x01
        mu = float(x.mean())
        var = float(x.var()) + _VAR_EPS
        fix = (np.abs(x01 - mu * _W01) ** 2 - np.abs(x01) ** 2) @ _FB[:2].astype(np.float64)
        inner = (mel + fix) / var
        xn = (x - np.float32(mu)) / np.float32(np.sqrt(var))
        xp = np.pad(xn, (pad, pad), mode="reflect")
        edge = [i for i in range(n) if i < first or i >= last]
        spec = np.abs(np.fft.rfft(xp[np.arange(N_FFT)[None, :] + HOP * np.array(edge)[:, None]] * _WINDOW,
                                  axis=1)) ** 2
        out = np.empty((n, N_MELS), np.float32)
        out[first:last] = inner[: max(0, min(last, n) - first)]
        out[edge] = spec.astype(np.float32) @ _FB
        out = np.log10(np.maximum(out, _FLOOR))
        out = np.maximum(out, out.max() - 8.0)
        return ((out + 4.0) / 4.0).astype(np.float32)
