"""Kiosk acoustic conditions for voice training and benchmarks: room reverberation, lossy codec, gain, noise.

- ``reverb``: a synthetic room impulse response (direct path, a few early reflections, then exponentially decaying
  noise whose decay gives the requested RT60), the classic image-free approximation of a small room.
- ``codec``: an Ogg Opus round trip at a low bit rate through libsndfile (soundfile), as a VoIP or cheap USB
  microphone chain would deliver.
- ``gain_db``: a level change with clipping at full scale, as an unknown microphone gain gives.
- ``speed``: a resampling by 0.9-1.1 (pitch, formants and tempo together: a vocal-tract-length-like change of
  speaker), for training copies only (``speed_copy``), never a benchmark condition.
Noise (babble, HVAC) comes from ``voice_noise``.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from edge.train.voice_noise import _shaped_noise, babble, mix_noise
from edge.voice.features import SAMPLE_RATE

CONDITIONS = ("clean", "babble10", "hvac10", "reverb", "codec", "gain-20", "gain+10")


def room_impulse(rt60_s: float, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Impulse response of a small room with reverberation time ``rt60_s`` (unit direct path)."""
    n = int(rate * min(1.2, 1.5 * rt60_s))
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # 60 dB down at rt60
    tail[: int(0.003 * rate)] = 0.0
    h = 0.35 * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    for _ in range(6):  # early reflections 3-25 ms after the direct sound
        k = int(rng.uniform(0.003, 0.025) * rate)
        h[k] += rng.uniform(0.15, 0.5) * rng.choice([-1.0, 1.0])
    h[0] = 1.0
    return h.astype(np.float32)


def reverb(x: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` in a room with the given RT60, same length, level kept (peak-limited to full scale)."""
    h = room_impulse(rt60_s, rng)
    n = 1 << int(np.ceil(np.log2(x.size + h.size)))  # FFT convolution: direct convolution is O(len(x) * len(h))
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n) * np.fft.rfft(h.astype(np.float64), n), n)[: x.size]
    y *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / (np.mean(y ** 2) + 1e-18))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def codec(x: np.ndarray, kbps: int = 16) -> np.ndarray:
    """Ogg Opus encode and decode at ``kbps`` (libsndfile's compression level), same length."""
    buf = io.BytesIO()
    level = float(np.clip(1.0 - (kbps - 6) / 60.0, 0.0, 1.0))  # libsndfile maps 0..1 onto the Opus bit rate
    with sf.SoundFile(buf, "w", SAMPLE_RATE, 1, format="OGG", subtype="OPUS",
                      compression_level=level) as f:
        f.write(x.astype(np.float32))
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    y = y[: x.size]
    return np.pad(y, (0, x.size - y.size)).astype(np.float32)


def gain_db(x: np.ndarray, db: float) -> np.ndarray:
    """Level change by ``db`` with clipping at full scale."""
    return np.clip(x * np.float32(10 ** (db / 20.0)), -1.0, 1.0).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster (length / factor; every frequency times factor), band-limited."""
    from math import gcd

    from scipy.signal import resample_poly

    up, down = 1000, int(round(1000 * factor))
    g = gcd(up, down)
    return resample_poly(x.astype(np.float64), up // g, down // g).astype(np.float32)


def speed_copy(x: np.ndarray, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """A training copy of another-sounding speaker: ``speed`` by 0.9-1.1, then kiosk conditions on half."""
    y = speed(x, float(rng.uniform(0.9, 1.1)))
    return augment(y, rng, pool) if rng.random() < 0.5 else y


def condition(x: np.ndarray, kind: str, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """``x`` under one named benchmark condition of ``CONDITIONS``."""
    if kind == "clean":
        return x
    if kind == "babble10":
        if not pool:  # never a clean clip reported as a babble one
            raise ValueError("babble10 needs babble talkers: the speech pool is empty")
        return mix_noise(x, babble(x.size, pool, rng), 10.0)
    if kind == "hvac10":
        return mix_noise(x, _shaped_noise(x.size, rng), 10.0)
    if kind == "reverb":
        return reverb(x, 0.5, rng)
    if kind == "codec":
        return codec(x, 12)
    if kind.startswith("gain"):
        return gain_db(x, float(kind[4:]))
    raise ValueError(f"unknown condition {kind!r}; one of {CONDITIONS}")


def augment(x: np.ndarray, rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """A random mix of kiosk conditions for training: reverb, noise at 5-25 dB, codec, gain (each sometimes)."""
    y = x
    if rng.random() < 0.5:
        y = reverb(y, float(rng.uniform(0.2, 0.6)), rng)
    r = rng.random()
    if r < 0.35 and pool:
        y = mix_noise(y, babble(y.size, pool, rng), float(rng.uniform(5, 25)))
    elif r < 0.6:
        y = mix_noise(y, _shaped_noise(y.size, rng), float(rng.uniform(5, 25)))
    if rng.random() < 0.25:
        y = codec(y, int(rng.choice([8, 12, 16, 24])))
    if rng.random() < 0.3:
        y = gain_db(y, float(rng.uniform(-20, 10)))
    return y
