"""``edge-emotion check-microphone``: is the counter microphone's level one the voice model can use?

Kiosk microphones and their gains are unknown, and the voice path is gain-invariant only within a range (measured in
the voice card): the VAD raises a quiet window for webrtcvad (by at most 30 dB) and so finds speech down to a few dB
over the microphone's own noise, but the Whisper features stop being gain-invariant under about -55 dBFS of active
speech, and a clipped voice is distorted. The installer talks at the
counter for a few seconds; this prints the speech level, the room's noise floor, how many windows the service would
analyse (its staff-voice gate and VAD, with the kiosk's settings) and a verdict with the gain change to make. The
recording stays in memory and is dropped: nothing is stored or sent. ``assess`` is pure; recording is in
``edge.ops.mic_record``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.voice.features import SAMPLE_RATE, TARGET_DBFS, frame_rms_db
from edge.voice.vad import Vad

LOW_DBFS = -50.0  # quieter active speech: under it the margin to the -55 dBFS invariance limit is gone
HIGH_DBFS = -12.0  # louder: a raised (angry) voice, ~10-15 dB louder than talking, would clip
AIM_DBFS = -30.0  # where normal talking should sit: the gain advice moves speech here
CLIP_LEVEL = 0.999  # |sample| at or above: clipped
MAX_CLIPPED = 0.001  # share of samples clipped above which the level is too high
MIN_SNR_DB = 15.0  # speech over the noise floor; under it the model loses ground (10 dB babble: measured AUC drops)
NOT_STEADY_DB = 3.0  # the loud end this far over the noise floor: something besides steady noise (a quiet voice)
MIN_WINDOW_SHARE = 0.5  # share of the recording's analysis windows that must reach the model (someone talks throughout)
WINDOW_N = 2 * SAMPLE_RATE  # the service's analysis window (2 s)


@dataclass
class Settings:
    """The kiosk's voice settings the check applies (``analysis.*``; defaults as in the config)."""

    min_speech_ratio: float = 0.3
    vad_aggressiveness: int = 2
    hop_s: float = 0.25
    gate: Any = None  # the kiosk's staff-voice gate (``edge.voicegate.gate.make_gate``), None: mono, ungated


@dataclass
class LevelReport:
    """What the check measured and what it concludes; ``problems`` empty means the level is usable."""

    seconds: float
    windows: int  # 2 s analysis windows in the recording (every ``hop_s``)
    analysed: int  # of those, the ones the service's gate and VAD pass to the voice model
    analysed_at_level: int  # the same once the recording is brought to the model's level: what a good gain gives
    speech_dbfs: float | None  # active speech level (the features' measure, without their -70 dBFS floor)
    noise_dbfs: float  # 10th percentile of the 30 ms frame levels
    clipped: float  # share of samples at full scale
    held_back: dict[str, int] = field(default_factory=dict)  # windows the staff-voice gate kept from the model
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs changing before the kiosk goes live."""
        return not self.problems


def speech_level_dbfs(x: np.ndarray) -> float | None:
    """Active speech level as ``active_level_dbfs`` measures it (within 30 dB of the loud end, without DC) but without
    its -70 dBFS floor, so a far too quiet microphone's level (and the gain advice) is not overstated."""
    db = frame_rms_db(x - np.float32(x.mean(dtype=np.float64)))
    top = float(np.percentile(db, 95)) if db.size else -200.0
    if top < -100.0:  # digital silence
        return None
    active = db > top - 30.0
    return float(10.0 * np.log10(np.mean(10.0 ** (db[active].astype(np.float64) / 10.0))))


def analysed_windows(x: np.ndarray, s: Settings) -> tuple[int, int, Counter[str]]:
    """(windows, windows the model gets, gate verdicts of those held back): 2 s windows every ``hop_s``, one VAD kept
    across them as the service keeps one across its stream."""
    vad, held = Vad(s.vad_aggressiveness), Counter[str]()
    ends = range(WINDOW_N, x.shape[0] + 1, max(1, int(round(s.hop_s * SAMPLE_RATE))))
    passed = 0
    for e in ends:
        win = x[e - WINDOW_N:e]
        if s.gate is not None:
            d = s.gate.decide(win)
            if d.audio is None:
                held[d.verdict] += 1
                continue
            win = d.audio
        passed += vad.speech_ratio(win) >= s.min_speech_ratio
    return len(ends), passed, held


def _gain_advice(level: float) -> str:
    """'raise'/'lower' the input gain by about N dB, to bring ``level`` to AIM_DBFS."""
    change = AIM_DBFS - level
    return f"{'raise' if change > 0 else 'lower'} the input gain by about {abs(change):.0f} dB"


def _quiet_advice(level: float, noise: float) -> str:
    """The gain advice for too quiet talking, and closer placement where the noise is near: gain raises both."""
    advice = _gain_advice(level)
    if level - noise < MIN_SNR_DB:
        advice += (f"; the speech is only {level - noise:.0f} dB over the noise floor, and a gain change raises the "
                   "microphone's own noise with it: bring the microphone closer to the customer")
    return advice


def assess(samples: np.ndarray, settings: Settings | None = None) -> LevelReport:
    """Level report of a 16 kHz recording, mono or (samples, channels) for a gated kiosk, of someone talking normally
    where customers stand; ValueError when it is too short or not finite."""
    s = settings or Settings()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2 and s.gate is None:
        x = x.mean(axis=1)
    if x.shape[0] < WINDOW_N + SAMPLE_RATE:
        raise ValueError(f"the recording is {x.shape[0] / SAMPLE_RATE:.2f} s long; record at least 3 s of talking")
    if not np.all(np.isfinite(x)):
        raise ValueError("the recording holds samples that are not numbers (NaN or infinite)")
    mono = s.gate.mono(x) if s.gate is not None and x.ndim == 2 else x.reshape(-1)
    clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    windows, analysed, held = analysed_windows(x, s)
    level = speech_level_dbfs(mono)
    db = frame_rms_db(mono - np.float32(mono.mean(dtype=np.float64)))
    noise = float(np.percentile(db, 10))
    # the same recording at the features' own level: windows the service misses only for being too quiet show here
    at_level = 0 if level is None else analysed_windows(
        np.clip(x * np.float32(10 ** ((TARGET_DBFS - level) / 20)), -1.0, 1.0), s)[1]
    rep = LevelReport(x.shape[0] / SAMPLE_RATE, windows, analysed, at_level, level, noise, clipped, dict(held))
    if clipped > MAX_CLIPPED:
        rep.problems.append(f"{clipped:.1%} of the samples are clipped at full scale: lower the input gain "
                            "(a raised voice is louder still)")
    if sum(held.values()) > windows // 2:
        rep.problems.append("the staff-voice gate held back " + ", ".join(f"{n} windows as {v}" for v, n in
                            held.most_common()) + f" of {windows}: check its microphones and settings (the talker "
                            "stands where customers stand)")
    need = max(1, int(np.ceil(MIN_WINDOW_SHARE * windows)))
    if analysed < need:
        if level is not None and level < LOW_DBFS and (at_level >= need or level - noise >= NOT_STEADY_DB):
            what = "speech" if at_level >= need else "sound, too close to the noise floor to tell speech in it,"
            rep.problems.append(f"{what} at {level:.0f} dBFS (noise floor {noise:.0f} dBFS): {analysed} of {windows} "
                                f"windows reach the voice model, {at_level} at a good gain; "
                                f"{_quiet_advice(level, noise)}; check again")
        elif at_level > 0 or analysed > 0:
            rep.problems.append(f"only {analysed} of {windows} windows had enough speech for the voice model: talk "
                                "throughout the check, in a quieter moment, closer to the microphone")
        else:
            rep.problems.append(f"no speech heard (0 of {windows} windows): talk normally at the customer's place "
                                "throughout the check, and check that this is the counter's microphone")
        return rep
    assert level is not None  # windows with speech have active frames
    if level < LOW_DBFS:
        rep.problems.append(f"speech at {level:.0f} dBFS is too quiet (the voice model needs about {LOW_DBFS:.0f} "
                            f"dBFS or more): {_quiet_advice(level, noise)}")
    elif level > HIGH_DBFS and not clipped > MAX_CLIPPED:
        rep.problems.append(f"speech at {level:.0f} dBFS leaves no headroom for a raised voice: "
                            f"{_gain_advice(level)}")
    if level - noise < MIN_SNR_DB and level >= LOW_DBFS:  # (too quiet: said in the problem)
        rep.warnings.append(f"the room noise ({noise:.0f} dBFS) is only {level - noise:.0f} dB under the speech: "
                            "move the microphone closer to the customer or away from fans and the queue "
                            f"(readings lose accuracy under about {MIN_SNR_DB:.0f} dB)")
    return rep


def render(rep: LevelReport) -> str:
    """Human-readable report: figures, then problems and warnings, then the verdict."""
    level = "none" if rep.speech_dbfs is None else f"{rep.speech_dbfs:.1f} dBFS"
    held = f" (held back by the staff-voice gate: {sum(rep.held_back.values())})" if rep.held_back else ""
    lines = [f"recording {rep.seconds:.1f} s: {rep.analysed} of {rep.windows} windows reach the voice model{held} "
             f"(at a good gain {rep.analysed_at_level}), speech level {level}, noise floor {rep.noise_dbfs:.1f} dBFS, "
             f"clipped {rep.clipped:.2%}",
             f"usable range: normal talking between {LOW_DBFS:.0f} and {HIGH_DBFS:.0f} dBFS (aim for about "
             f"{AIM_DBFS:.0f}), no clipping, speech at least {MIN_SNR_DB:.0f} dB over the room noise"]
    lines += [f"PROBLEM: {p}" for p in rep.problems] + [f"warning: {w}" for w in rep.warnings]
    lines.append("OK: the voice model can use this level" if rep.ok else "NOT OK: fix the problem(s) above and check "
                 "again")
    return "\n".join(lines)
