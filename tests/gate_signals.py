"""Synthetic speech-like signals for the staff-voice gate tests (no corpus needed): voiced syllables and pauses."""

from __future__ import annotations

import numpy as np

RATE = 16000


def babble(seconds: float, f0: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Voiced 'syllables' (a harmonic complex on ``f0`` with vibrato, 120-260 ms) separated by 40-120 ms pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase) for k in range(1, int(4000 / f0)))
    env = np.zeros(n)
    pos = int(rng.uniform(0, 0.05) * rate)
    while pos < n:
        on = int(rng.uniform(0.12, 0.26) * rate)
        env[pos:pos + on] = np.hanning(on)[: max(0, min(on, n - pos))]
        pos += on + int(rng.uniform(0.04, 0.12) * rate)
    y = np.asarray(x) * env
    return (0.5 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)


def delayed(x: np.ndarray, delay_s: float, rate: int = RATE) -> np.ndarray:
    """``x`` delayed by a (fractional) number of seconds, circularly, in the frequency domain."""
    n = x.size
    f = np.fft.rfftfreq(n, 1.0 / rate)
    return np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * f * delay_s), n).astype(np.float32)


def array_signal(source: np.ndarray, azimuth_deg: float, positions: np.ndarray, rate: int = RATE) -> np.ndarray:
    """(samples, mics): a far-field source at ``azimuth_deg`` reaching each microphone early by ``p . u / c``."""
    u = np.array([np.cos(np.deg2rad(azimuth_deg)), np.sin(np.deg2rad(azimuth_deg))])
    lead = positions @ u / 343.0
    return np.stack([delayed(source, -float(d), rate) for d in lead], axis=1)


def counter_two_mics(rate: int = RATE, noise: float = 0.002) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """(samples, 2): channel 0 the staff mic, 1 the customer mic; staff talks 0.5-3.0 s, the customer 3.5-6.0 s.

    Each microphone hears the other side 14 dB lower. Returns the audio and the speech intervals in seconds.
    """
    staff, cust = babble(2.5, 120.0, 1), babble(2.5, 210.0, 2)
    n = int(6.5 * rate)
    ch = np.zeros((n, 2), np.float32)
    s0, c0 = int(0.5 * rate), int(3.5 * rate)
    ch[s0:s0 + staff.size, 0] += staff
    ch[s0:s0 + staff.size, 1] += 0.2 * staff
    ch[c0:c0 + cust.size, 1] += cust
    ch[c0:c0 + cust.size, 0] += 0.2 * cust
    ch += np.random.default_rng(3).normal(0, noise, ch.shape).astype(np.float32)
    return ch, {"staff": (0.5, 3.0), "customer": (3.5, 6.0)}
