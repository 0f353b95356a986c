"""Voice model front ends: the features a voice model was trained on, named by its manifest entry's ``features``.

- ``logmel64`` (model 0.1.x): gain-normalised 64-band log-mel (``edge.voice.features``); consecutive windows of one
  stream share mel frames (``StreamFeatures``).
- ``whisper-logmel80`` (model 0.2.x, a Whisper-tiny encoder): ``edge.voice.whisper_mel``, each window normalised to
  zero mean and unit variance; overlapping windows share their raw frames' mel power (``WhisperStream``).
"""

from __future__ import annotations

import numpy as np

from edge.runtime import ModelError
from edge.voice import features as lm
from edge.voice import whisper_mel as wm
from edge.voice.stream import StreamFeatures


class LogMel64:
    """The 64-band gain-normalised log-mel front end with frame sharing between overlapping windows."""

    name = "logmel64"
    n_mels = lm.N_MELS

    def __init__(self) -> None:
        """A fresh frame cache."""
        self.stream = StreamFeatures()

    def window_samples(self, frames: int) -> int:
        """Window length in samples for ``frames`` model frames, rounded up to whole hops (198 -> 32000)."""
        span = (frames - 1) * lm.HOP + lm.WIN
        return -(-span // lm.HOP) * lm.HOP

    def reset(self) -> None:
        """Forget the previous window (a new stream)."""
        self.stream.reset()

    def features(self, x: np.ndarray, end: int | None = None) -> np.ndarray:
        """(frames, 64) features of one full window; ``end``: its stream position, to share frames."""
        if end is not None:
            return self.stream.features(x, int(end) - x.size)
        return lm.log_mel(lm.normalize_gain(x))


class WhisperLogMel80:
    """Whisper's 80-band log-mel, per-window waveform normalisation (gain-invariant), frames shared in a stream."""

    name = "whisper-logmel80"
    n_mels = wm.N_MELS

    def __init__(self) -> None:
        """A fresh frame cache."""
        self.stream = wm.WhisperStream()

    def window_samples(self, frames: int) -> int:
        """Window length in samples for ``frames`` frames (200 -> 32000)."""
        return frames * wm.HOP

    def reset(self) -> None:
        """Forget the previous window (a new stream)."""
        self.stream.reset()

    def features(self, x: np.ndarray, end: int | None = None) -> np.ndarray:
        """(frames, 80) features of one full window; ``end``: its stream position, to share frames."""
        if end is not None:
            return self.stream.features(x, int(end) - x.size)
        return wm.whisper_log_mel(x)


FRONTENDS: dict[str, type[LogMel64] | type[WhisperLogMel80]] = {
    "logmel64": LogMel64, "whisper-logmel80": WhisperLogMel80,
}


def make_frontend(name: str, input_shape: tuple[int, ...]) -> LogMel64 | WhisperLogMel80:
    """The front end a model declares, checked against the model's input (1, frames, bands[, 1])."""
    if name not in FRONTENDS:
        raise ModelError(f"voice model declares features {name!r}; known: {sorted(FRONTENDS)}")
    fe = FRONTENDS[name]()
    if len(input_shape) < 3 or input_shape[2] != fe.n_mels:
        raise ModelError(f"voice model input {input_shape} is not (1, frames, {fe.n_mels}[, 1]) as {name} needs")
    return fe
