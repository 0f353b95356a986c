"""Streaming window features: overlapping analysis windows reuse the mel power of the frames they share.

The service slides a 2 s window over the microphone stream every ``voice_hop_s``; consecutive windows share all but
the newest hop of audio. ``window_features`` (the one definition, used in training) gain-normalises each window and
then computes all 198 log-mel frames. Here the mel power of each 25 ms frame is computed once, on the raw samples, and
the window's gain is applied in the power domain (``|FFT(g·x)|² = g²·|FFT(x)|²``): the features equal
``window_features`` up to float32 rounding (tested), for a fraction of the cost. A window whose gain would clip
samples (the reference clips at ±1, which the power domain cannot express) falls back to the reference.
"""

from __future__ import annotations

import numpy as np

from edge.voice.features import HOP, WIN, gain_linear, log_mel, log_scale, mel_power, n_frames, normalize_gain


class StreamFeatures:
    """``window_features`` for consecutive windows of one stream, computing only the frames new since the last."""

    def __init__(self) -> None:
        """An empty cache; ``frames_computed``/``frames_reused`` count mel frames (for tests and benchmarks)."""
        self.frames_computed = 0
        self.frames_reused = 0
        self.reset()

    def reset(self) -> None:
        """Forget the previous window (a new stream, a gap, a pause)."""
        self._x: np.ndarray | None = None
        self._pow: np.ndarray | None = None
        self._start = 0

    def _reusable(self, x: np.ndarray, start: int) -> tuple[int, int]:
        """(first reusable cached frame, number of frames) shared by the cached window and this one."""
        if self._x is None or self._pow is None:
            return 0, 0
        shift = start - self._start
        if shift < 0 or shift % HOP:
            return 0, 0  # frames on another grid: nothing lines up
        over = self._x.size - shift  # samples both windows hold
        if over < WIN or over > x.size or not np.array_equal(self._x[shift:], x[:over]):
            return 0, 0  # a gap, lost audio or another stream: the content decides, not the caller's count
        first = shift // HOP
        return first, max(0, min(self._pow.shape[0] - first, n_frames(over)))

    def power(self, x: np.ndarray, start: int) -> np.ndarray:
        """Mel power (frames, N_MELS) of window ``x`` whose first sample is sample ``start`` of the stream."""
        x = np.asarray(x, dtype=np.float32)
        first, keep = self._reusable(x, start)
        new = mel_power(x[keep * HOP:])
        cached = self._pow
        pw = new if keep == 0 or cached is None else np.concatenate([cached[first:first + keep], new])
        self.frames_reused += keep
        self.frames_computed += new.shape[0]
        self._x, self._pow, self._start = x.copy(), pw, int(start)
        return pw

    def features(self, x: np.ndarray, start: int) -> np.ndarray:
        """Log-mel features of one full analysis window: ``window_features(x)`` up to float32 rounding."""
        x = np.asarray(x, dtype=np.float32)
        pw = self.power(x, start)
        g = gain_linear(x)
        if g is None:
            return log_scale(pw)
        if float(np.abs(x).max()) * float(g) > 1.0:
            return log_mel(normalize_gain(x))  # the reference clips this window: compute it exactly
        return log_scale(pw * np.float32(g * g))


class StreamWindow:
    """The newest analysis window of a live stream, ending on the 10 ms frame grid so windows share mel frames."""

    def __init__(self, window_samples: int) -> None:
        """Hold up to ``window_samples`` + one frame hop of the newest audio."""
        self.win = int(window_samples)
        self.total = 0  # samples pushed since the stream began: a window's ``end`` counts from here
        self._buf = np.zeros(0, np.float32)

    def clear(self) -> None:
        """Drop the held audio (a pause): the next window starts afresh; positions keep counting."""
        self._buf = np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> None:
        """Append newly captured samples."""
        self.total += int(samples.size)
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32)])[-(self.win + HOP):]

    def latest(self) -> tuple[np.ndarray, int, int]:
        """(window, its end position, samples held back): the newest < 10 ms wait for the next window."""
        late = self.total % HOP
        return self._buf[:self._buf.size - late][-self.win:], self.total - late, late
