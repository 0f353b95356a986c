"""Simulated service counters for the staff-voice gate benchmark: pyroomacoustics rooms, corpus speech as talkers.

A room (random size, RT60 0.2-0.6 s) has a counter across it with the kiosk on it; the staff sit behind it, the
customer stands in front. Microphones: a 2-mic array (58 mm, its axis towards the staff, +-15 degrees), a 4-mic
circular array (32 mm radius, any rotation), a staff microphone on the staff's desk and the kiosk's front
microphone. One image-source simulation per room renders both talkers at every microphone. Needs the optional
``sim`` extra (pyroomacoustics); never imported by the service.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture.media import read_audio_file
from edge.voice.vad import Vad

log = logging.getLogger(__name__)

RATE = 16000
SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
CORPORA = ("ravdess", "emodb", "urdu", "ased", "crema-d")
TWO_MIC = np.array([[-0.029, 0.0], [0.029, 0.0]])
FOUR_MIC = np.array([[0.032, 0.0], [0.0, 0.032], [-0.032, 0.0], [0.0, -0.032]])
ACTIVE_DBFS = -26.0  # each talker's speech is levelled to about this before the room (+-3 dB per talker)


@dataclass
class Room:
    """One simulated counter: the rendered microphones, the talkers' true speech per 30 ms frame, and its setup."""

    seed: int
    rt60_s: float  # measured on the simulated impulse responses
    mics: dict[str, np.ndarray]  # "two", "four": (samples, mics); "staff_mic", "kiosk_mic": (samples,)
    talking: dict[str, np.ndarray]  # "staff", "customer": bool per 30 ms frame of the dry talker tracks
    calibration: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # array -> side -> audio
    truth_deg: dict[str, dict[str, float]] = field(default_factory=dict)  # array -> side -> azimuth (local)


def speakers(data: Path = SPEECH_DIR) -> dict[str, list[Path]]:
    """Clips per speaker ("corpus:speaker") of the staged speech corpora."""
    out: dict[str, list[Path]] = {}
    for corpus in CORPORA:
        manifest = data / corpus / "MANIFEST.csv"
        if not manifest.is_file():
            continue
        with manifest.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out.setdefault(f"{corpus}:{row['speaker']}", []).append(data / corpus / row["path"])
    return out


def _levelled(x: np.ndarray, vad: Vad) -> np.ndarray:
    """A clip trimmed to its speech and levelled so its speech frames are at ACTIVE_DBFS."""
    span = vad.speech_span(x)
    if span is not None:
        x = x[max(0, span[0] - 1600):span[1] + 1600]
    mask = vad.speech_mask(x)
    frames = x[: mask.size * 480].reshape(-1, 480)
    rms = float(np.sqrt(np.mean(frames[mask] ** 2))) if mask.any() else float(np.sqrt(np.mean(x ** 2)) + 1e-9)
    return (x * (10 ** (ACTIVE_DBFS / 20) / max(rms, 1e-6))).astype(np.float32)


def talk(clips: list[Path], seconds: float, rng: np.random.Generator, vad: Vad) -> np.ndarray:
    """``seconds`` of one talker: random clips of theirs, back to back with short pauses."""
    out: list[np.ndarray] = []
    n = 0
    while n < seconds * RATE:
        x = _levelled(read_audio_file(clips[int(rng.integers(len(clips)))], RATE), vad)
        gap = np.zeros(int(rng.uniform(0.1, 0.4) * RATE), np.float32)
        out += [x, gap]
        n += x.size + gap.size
    return np.concatenate(out)[: int(seconds * RATE)]


def script(rng: np.random.Generator, staff: list[Path], customer: list[Path], vad: Vad) -> dict[str, np.ndarray]:
    """The two talkers' dry tracks: staff alone, customer alone, both at once, customer, staff (pauses between)."""
    turns = [("staff", 5.0), ("customer", 5.0), ("both", 4.0), ("customer", 4.0), ("staff", 4.0)]
    tracks: dict[str, list[np.ndarray]] = {"staff": [], "customer": []}
    for who, sec in turns:
        d = sec * rng.uniform(0.8, 1.2)
        for side, clips in (("staff", staff), ("customer", customer)):
            speaks = who in (side, "both")
            tracks[side].append(talk(clips, d, rng, vad) if speaks else np.zeros(int(d * RATE), np.float32))
        pause = np.zeros(int(rng.uniform(0.3, 0.8) * RATE), np.float32)
        for side in tracks:
            tracks[side].append(pause)
    return {k: np.concatenate(v) for k, v in tracks.items()}


def _rot(deg: float) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])


def _azimuth(local_rot: float, centre: np.ndarray, point: np.ndarray, linear: bool) -> float:
    """Azimuth of ``point`` in an array's own frame (a linear array: the angle from its axis, 0..180)."""
    d = point[:2] - centre[:2]
    a = (np.rad2deg(np.arctan2(d[1], d[0])) - local_rot) % 360.0
    return float(min(a, 360.0 - a)) if linear else float(a)


def simulate(seed: int, pool: dict[str, list[Path]]) -> Room:
    """Render one random counter room (speakers, geometry, RT60, noise) from ``seed``."""
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    vad = Vad(2)
    dims = np.array([rng.uniform(4, 8), rng.uniform(4, 7), rng.uniform(2.7, 3.3)])
    rt60 = rng.uniform(0.2, 0.6)
    absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=order)
    yc, xk = dims[1] * rng.uniform(0.4, 0.6), dims[0] * rng.uniform(0.3, 0.7)
    kiosk = np.array([xk, yc, 1.15])
    staff_pos = np.array([xk + rng.uniform(-0.35, 0.35), yc + rng.uniform(0.5, 0.9), rng.uniform(1.15, 1.3)])
    cust_pos = np.array([xk + rng.uniform(-0.3, 0.3), yc - rng.uniform(0.5, 1.0), rng.uniform(1.45, 1.75)])
    room.add_source(staff_pos)
    room.add_source(cust_pos)
    rot2 = 90.0 + rng.uniform(-15, 15)  # the 2-mic axis points at the staff side, roughly
    rot4 = rng.uniform(0, 360)
    two = kiosk[:2] + TWO_MIC @ _rot(rot2).T
    four = kiosk[:2] + FOUR_MIC @ _rot(rot4).T
    towards = (kiosk - staff_pos) / np.linalg.norm(kiosk - staff_pos)
    staff_mic = staff_pos + towards * rng.uniform(0.25, 0.4)
    staff_mic[2] = 0.9  # on the staff's desk
    kiosk_mic = kiosk + np.array([0.0, -0.06, 0.05])  # the kiosk's front, facing the customer
    mics = np.vstack([np.c_[two, np.full(2, kiosk[2])], np.c_[four, np.full(4, kiosk[2])], staff_mic, kiosk_mic])
    room.add_microphone_array(mics.T)
    room.compute_rir()
    speakers_ = sorted(pool)
    s_id, c_id = rng.choice(len(speakers_), size=2, replace=False)
    s_clips, c_clips = pool[speakers_[int(s_id)]], pool[speakers_[int(c_id)]]
    dry = script(rng, s_clips, c_clips, vad)
    gains = {"staff": 10 ** (rng.uniform(-3, 3) / 20), "customer": 10 ** (rng.uniform(-3, 3) / 20)}
    n = dry["staff"].size

    def render(tracks: dict[str, np.ndarray], size: int) -> np.ndarray:
        out = np.zeros((size, mics.shape[0]), np.float32)
        for s, side in enumerate(("staff", "customer")):
            if not tracks[side].any():
                continue
            for m in range(mics.shape[0]):
                out[:, m] += fftconvolve(tracks[side] * gains[side], room.rir[m][s])[:size].astype(np.float32)
        return out

    wet = render(dry, n)
    snr_db = rng.uniform(15, 30)
    speech_rms = float(np.sqrt(np.mean(wet[:, 7][dry["customer"] != 0] ** 2)))
    noise = rng.normal(0, speech_rms / 10 ** (snr_db / 20), wet.shape).astype(np.float32)
    wet += noise
    cal_s = talk(s_clips, 8.0, rng, vad)
    cal_c = talk(c_clips, 8.0, rng, vad)
    z = np.zeros_like(cal_s)
    cs, cc = render({"staff": cal_s, "customer": z}, z.size), render({"staff": z, "customer": cal_c}, z.size)
    cs += noise[: z.size]
    cc += noise[: z.size]
    measured = float(np.median(room.measure_rt60()))
    talking = {k: vad.speech_mask(v) for k, v in dry.items()}
    return Room(seed=seed, rt60_s=measured,
                mics={"two": wet[:, 0:2], "four": wet[:, 2:6], "staff_mic": wet[:, 6], "kiosk_mic": wet[:, 7]},
                talking=talking,
                calibration={"two": {"staff": cs[:, 0:2], "customer": cc[:, 0:2]},
                             "four": {"staff": cs[:, 2:6], "customer": cc[:, 2:6]}},
                truth_deg={"two": {"staff": _azimuth(rot2, kiosk, staff_pos, True),
                                   "customer": _azimuth(rot2, kiosk, cust_pos, True)},
                           "four": {"staff": _azimuth(rot4, kiosk, staff_pos, False),
                                    "customer": _azimuth(rot4, kiosk, cust_pos, False)}})
