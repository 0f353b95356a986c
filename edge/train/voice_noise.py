"""Service-hall noise added to test clips at a given SNR: babble of real talkers and HVAC-like brown noise."""

from __future__ import annotations

import numpy as np

from edge.train.voice_data import Clip
from edge.voice.features import SAMPLE_RATE, active_level_dbfs

NOISES = ("babble", "babble-ravdess", "hvac")


def _shaped_noise(n: int, rng: np.random.Generator, lo_hz: float = 20.0, hi_hz: float = 800.0) -> np.ndarray:
    """HVAC-like noise: brown (1/f amplitude) spectrum, high-passed at lo_hz, 4th-order low-pass at hi_hz."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec *= np.where(f >= lo_hz, 1.0 / np.maximum(f, lo_hz), 0.0) / np.sqrt(1.0 + (f / hi_hz) ** 8)
    return np.fft.irfft(spec, n).astype(np.float32)


def babble(n: int, pool: list[np.ndarray], rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Sum of ``talkers`` speech-only signals from ``pool``, each at the same RMS, random offsets, looped."""
    out = np.zeros(n, np.float64)
    for i in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
        s = pool[int(i)]
        seg = np.resize(np.roll(s, -int(rng.integers(0, s.size))), n)
        out += seg / (np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-9)
    return out.astype(np.float32)


def speech_pool(clips: list[Clip], max_clips: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Speech-only (VAD) signals of up to ``max_clips`` clips, for babble."""
    from edge.voice.vad import Vad

    vad = Vad(2)
    idx = np.random.default_rng(seed).permutation(len(clips))[:max_clips]
    return [s for i in idx if (s := vad.speech_only(clips[int(i)].audio)).size > SAMPLE_RATE // 2]


def mix_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so active-speech level (as the features measure it) minus noise RMS = snr_db."""
    level = active_level_dbfs(x)
    if level is None:
        return x.copy()
    n_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2)) + 1e-12)
    return np.clip(x + noise * np.float32(10 ** ((level - snr_db - n_db) / 20)), -1, 1).astype(np.float32)


def add_noise(clips: list[Clip], kind: str, snr_db: float, pool: list[np.ndarray] | None, seed: int = 0) -> list[Clip]:
    """Noisy copies of ``clips`` (seeded per clip, so the model and the baseline hear the same noise)."""
    out = []
    for i, c in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        if kind == "hvac":
            noise = _shaped_noise(c.audio.size, rng)
        else:
            if not pool:
                raise ValueError("babble noise needs a speech pool")
            noise = babble(c.audio.size, pool, rng)
        out.append(Clip(c.path, c.speaker, c.label, mix_noise(c.audio, noise, snr_db)))
    return out
