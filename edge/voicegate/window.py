"""The newest multichannel analysis window of a live stream (channels kept apart until the gate has decided)."""

from __future__ import annotations

import numpy as np

from edge.voice.features import HOP


class ChannelWindow:
    """``StreamWindow`` for (samples, channels) audio: ends on the 10 ms frame grid so windows share mel frames."""

    def __init__(self, window_samples: int, channels: int) -> None:
        """Hold up to ``window_samples`` + one frame hop of the newest audio of ``channels`` channels."""
        self.win = int(window_samples)
        self.channels = int(channels)
        self.total = 0  # samples pushed since the stream began: a window's ``end`` counts from here
        self._buf = np.zeros((0, self.channels), np.float32)

    def clear(self) -> None:
        """Drop the held audio (a pause): the next window starts afresh; positions keep counting."""
        self._buf = np.zeros((0, self.channels), np.float32)

    def push(self, samples: np.ndarray) -> None:
        """Append newly captured samples (mono, or (n, channels))."""
        x = np.asarray(samples, np.float32).reshape(-1, self.channels)
        self.total += x.shape[0]
        self._buf = np.concatenate([self._buf, x])[-(self.win + HOP):]

    def latest(self) -> tuple[np.ndarray, int, int]:
        """(window (n, channels), its end position, samples held back): the newest < 10 ms wait for the next."""
        late = self.total % HOP
        return self._buf[:self._buf.shape[0] - late][-self.win:], self.total - late, late
