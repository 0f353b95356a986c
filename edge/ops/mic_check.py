"""``edge-emotion check-microphone``: is the counter microphone's level one the voice model can use?

Kiosk microphones and their gains are unknown, and the voice path is gain-invariant only within a range (measured in
the voice card): the VAD never takes frames under -70 dBFS as speech and webrtcvad itself loses speech whose active
level is under about -65 dBFS (RAVDESS shifted by -20 dB: the clips that gave no reading were those); the Whisper
features stop being gain-invariant under about -55 dBFS; a clipped voice is distorted. The installer talks at the
counter for a few seconds; this prints the speech level, the room's noise floor and a verdict with the gain change to
make. The recording stays in memory and is dropped: nothing is stored or sent. ``assess`` is pure.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
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
HOP_N = SAMPLE_RATE // 2  # windows every 0.5 s, as clip readings are made


@dataclass
class LevelReport:
    """What the check measured and what it concludes; ``problems`` empty means the level is usable."""

    seconds: float
    windows: int  # 2 s analysis windows in the recording (hop 0.5 s)
    analysed: int  # of those, the ones the service's VAD passes to the voice model
    analysed_at_level: int  # the same once the recording is brought to the model's level: what a good gain gives
    speech_dbfs: float | None  # active speech level (the features' measure, without their -70 dBFS floor)
    noise_dbfs: float | None  # 10th percentile of the 30 ms frame levels
    clipped: float  # share of samples at full scale
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs changing before the kiosk goes live."""
        return not self.problems


def analysed_windows(x: np.ndarray, min_speech_ratio: float) -> tuple[int, int]:
    """(windows, windows with enough speech for the model): 2 s windows every 0.5 s, one VAD kept across them as the
    service keeps one across its stream."""
    vad = Vad(2)
    ends = range(WINDOW_N, x.size + 1, HOP_N)
    return len(ends), sum(vad.speech_ratio(x[e - WINDOW_N:e]) >= min_speech_ratio for e in ends)


def speech_level_dbfs(x: np.ndarray) -> float | None:
    """Active speech level as ``active_level_dbfs`` measures it (frames within 30 dB of the loud end, without DC), but
    without its -70 dBFS floor, so a far too quiet microphone's level (and the gain advice) is not overstated."""
    db = frame_rms_db(x - np.float32(x.mean(dtype=np.float64)))
    active = db > float(np.percentile(db, 95)) - 30.0
    if not active.any() or float(np.percentile(db, 95)) < -100.0:  # digital silence
        return None
    return float(10.0 * np.log10(np.mean(10.0 ** (db[active].astype(np.float64) / 10.0))))


def _gain_advice(level: float) -> str:
    """'raise'/'lower' the input gain by about N dB, to bring ``level`` to AIM_DBFS."""
    change = AIM_DBFS - level
    return f"{'raise' if change > 0 else 'lower'} the input gain by about {abs(change):.0f} dB"


def assess(samples: np.ndarray, min_speech_ratio: float = 0.3) -> LevelReport:
    """Level report of a mono 16 kHz recording of someone talking normally where customers stand;
    ``min_speech_ratio`` is the kiosk's ``analysis.min_speech_ratio``."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size < WINDOW_N + 2 * HOP_N:
        raise ValueError(f"the recording is {x.size / SAMPLE_RATE:.2f} s long; record at least 3 s of talking")
    clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    windows, analysed = analysed_windows(x, min_speech_ratio)
    level = speech_level_dbfs(x)
    # the same recording at the features' own level: windows the service misses only for being too quiet show here
    at_level = 0 if level is None else analysed_windows(
        np.clip(x * np.float32(10 ** ((TARGET_DBFS - level) / 20)), -1.0, 1.0), min_speech_ratio)[1]
    db = frame_rms_db(x - np.float32(x.mean(dtype=np.float64)))
    noise = float(np.percentile(db, 10))
    rep = LevelReport(x.size / SAMPLE_RATE, windows, analysed, at_level, level, noise, clipped)
    if clipped > MAX_CLIPPED:
        rep.problems.append(f"{clipped:.1%} of the samples are clipped at full scale: lower the input gain "
                            "(a raised voice is louder still)")
    need = max(1, int(np.ceil(MIN_WINDOW_SHARE * windows)))
    if analysed < need:
        if at_level >= need and level is not None and level < LOW_DBFS:
            rep.problems.append(f"speech heard at {level:.0f} dBFS, too quiet for the voice activity detector (it "
                                f"passed {analysed} of {windows} windows; at a good gain {at_level}): "
                                f"{_gain_advice(level)}")
        elif at_level >= need:
            rep.problems.append(f"only {analysed} of {windows} windows had enough speech for the voice model: talk "
                                "throughout the check, in a quieter moment, closer to the microphone")
        elif level is not None and level < LOW_DBFS and level - noise >= NOT_STEADY_DB:
            rep.problems.append(f"sound at {level:.0f} dBFS, too close to the noise floor ({noise:.0f} dBFS) to "
                                f"tell speech in it: {_gain_advice(level)} (or bring the microphone closer to the "
                                "customer) and check again while someone talks")
        else:
            rep.problems.append(f"no speech heard ({analysed} of {windows} windows with speech): talk normally at "
                                "the customer's place throughout the check, and check that this is the counter's "
                                "microphone")
        return rep
    assert level is not None  # windows with speech have active frames
    if level < LOW_DBFS:
        rep.problems.append(f"speech at {level:.0f} dBFS is too quiet (the voice model needs about {LOW_DBFS:.0f} "
                            f"dBFS or more): {_gain_advice(level)}")
    elif level > HIGH_DBFS and not clipped > MAX_CLIPPED:
        rep.problems.append(f"speech at {level:.0f} dBFS leaves no headroom for a raised voice: "
                            f"{_gain_advice(level)}")
    if level - noise < MIN_SNR_DB:
        rep.warnings.append(f"the room noise ({noise:.0f} dBFS) is only {level - noise:.0f} dB under the speech: "
                            "move the microphone closer to the customer or away from fans and the queue "
                            f"(readings lose accuracy under about {MIN_SNR_DB:.0f} dB)")
    return rep


def render(rep: LevelReport) -> str:
    """Human-readable report: figures, then problems and warnings, then the verdict."""
    def fmt(v: float | None) -> str:
        return "none" if v is None else f"{v:.1f} dBFS"

    lines = [f"recording {rep.seconds:.1f} s: {rep.analysed} of {rep.windows} windows reach the voice model (at a "
             f"good gain {rep.analysed_at_level}), speech level {fmt(rep.speech_dbfs)}, noise floor "
             f"{fmt(rep.noise_dbfs)}, clipped {rep.clipped:.2%}",
             f"usable range: normal talking between {LOW_DBFS:.0f} and {HIGH_DBFS:.0f} dBFS (aim for about "
             f"{AIM_DBFS:.0f}), no clipping, speech at least {MIN_SNR_DB:.0f} dB over the room noise"]
    lines += [f"PROBLEM: {p}" for p in rep.problems] + [f"warning: {w}" for w in rep.warnings]
    lines.append("OK: the voice model can use this level" if rep.ok else "NOT OK: fix the problem(s) above and check "
                 "again")
    return "\n".join(lines)


def record(device: str, channels: int, seconds: float) -> np.ndarray:
    """Record ``seconds`` of ``channels``-channel audio from ``device`` after a prompt (blocking; a CLI only), held in
    memory only: (samples, channels)."""
    import time

    from edge.capture import media

    sd = media._sounddevice()
    dev = media.resolve_input_device(device)
    media.check_input_channels(device, dev, channels)
    print(f"talk normally for {seconds:g} s from where customers stand, starting in 2 s ...", file=sys.stderr)
    time.sleep(2.0)
    audio = sd.rec(int(seconds * SAMPLE_RATE), samplerate=SAMPLE_RATE, channels=channels, dtype="float32",
                   device=dev)
    sd.wait()
    return np.asarray(audio, np.float32).reshape(-1, channels)


def cli(args: argparse.Namespace) -> int:
    """Record (or read ``--file``), assess what the voice model would get and print; exit 0 when usable, 2 when the
    level needs fixing or nothing could be checked."""
    from edge.capture.audio import classify_audio_source
    from edge.capture.media import MediaError, read_audio_channels, read_audio_file

    try:
        mono: Any = None
        channels, ratio, source, kind = 1, 0.3, args.device, "device"
        if args.config is not None:
            from edge.config import load_config
            from edge.voicegate.gate import make_gate

            cfg = load_config(args.config, credentials=False)  # the broker's password is not needed here
            channels, ratio = cfg.microphone.channels, cfg.analysis.min_speech_ratio
            mono = make_gate(cfg).mono  # the mix the voice model gets (a staff microphone left out)
            if source is None:
                source, kind = cfg.microphone.source, classify_audio_source(cfg.microphone.source, cfg.microphone.kind)
        if args.file is not None:
            source, kind = str(args.file), "file"
        if kind == "file":
            audio = read_audio_channels(source, SAMPLE_RATE)[:, :channels] if channels > 1 else \
                read_audio_file(source, SAMPLE_RATE)
        else:
            audio = record(source or "default", channels, args.seconds)
        if audio.ndim == 2 and audio.shape[1] < channels:
            raise ValueError(f"{source}: {audio.shape[1]} channel(s), the config's microphone.channels is {channels}")
        if audio.ndim == 2:
            audio = mono(audio) if mono is not None and audio.shape[1] > 1 else audio.mean(axis=1)
        rep = assess(audio, ratio)
    except (MediaError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(rep))
    return 0 if rep.ok else 2


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds from 3 to 120."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seconds {text!r}: expected a number") from None
    if not 3.0 <= v <= 120.0:
        raise argparse.ArgumentTypeError(f"--seconds {text}: expected 3 to 120")
    return v


def add_subcommand(sub: Any) -> None:
    """Register ``check-microphone`` on the CLI's subparsers."""
    p = sub.add_parser("check-microphone", help="record someone talking at the counter; say whether the "
                       "microphone's level suits the voice model and how to change the gain (exit 2: fix it)")
    p.add_argument("--config", "-c", type=Path, help="kiosk TOML: its microphone.source")
    p.add_argument("--device", help="input device (default: the config's microphone.source, else 'default')")
    p.add_argument("--seconds", type=positive_seconds, default=10.0, help="seconds to record (3-120, default 10)")
    p.add_argument("--file", type=Path, help="check a recording (wav/flac, mixed to mono) instead of the microphone")
    p.set_defaults(func=cli)
