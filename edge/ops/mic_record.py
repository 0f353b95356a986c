"""The ``check-microphone`` command: record (or read) the counter's audio as the kiosk's config says, then assess it.

Device errors of any kind (PortAudio's, a busy or vanished device, one that stops delivering) become one clear line
and exit 2; the recording is held in memory only.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.commands import positive
from edge.voice.features import SAMPLE_RATE

GRACE_S = 5.0  # a device that has not delivered the recording this long after its length: lost


def record(source: str, channels: int, seconds: float) -> np.ndarray:
    """(samples, channels) float32 of ``seconds`` from input ``source`` after a prompt; MediaError on any failure."""
    from edge.capture import media

    sd = media._sounddevice()
    label = f"microphone '{media.redact(source)}'"
    n = int(round(seconds * SAMPLE_RATE))
    buf = np.zeros((n, channels), np.float32)
    got = [0]
    done = threading.Event()

    def on_audio(indata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        k = min(frames, n - got[0])
        buf[got[0]:got[0] + k] = indata[:k].reshape(k, channels)
        got[0] += k
        if got[0] >= n:
            done.set()

    try:
        device = media.resolve_input_device(source)
        media.check_input_channels(source, device, channels)
        try:
            sd.check_input_settings(device=device, channels=channels, samplerate=SAMPLE_RATE, dtype="float32")
        except Exception as exc:  # PortAudioError or ValueError
            hint = ("; use the ALSA 'default' or a 'plughw:' device, which convert the rate"
                    if "sample rate" in str(exc).lower() else "")
            raise media.MediaError(f"{label}: cannot capture {channels} channel(s) at {SAMPLE_RATE} Hz "
                                   f"({exc}){hint}") from None
        print(f"talk normally for {seconds:g} s from where customers stand, starting in 2 s ...", file=sys.stderr)
        time.sleep(2.0)
        with sd.InputStream(samplerate=SAMPLE_RATE, channels=channels, dtype="float32", device=device,
                            callback=on_audio):
            if not done.wait(seconds + GRACE_S):
                raise media.MediaError(f"{label}: stopped delivering audio after {got[0] / SAMPLE_RATE:.1f} s of "
                                       f"{seconds:g} (unplugged, or taken by another program?)")
    except media.MediaError:
        raise
    except Exception as exc:  # PortAudioError (busy, unplugged, no default input), ValueError for bad settings
        raise media.MediaError(f"{label}: cannot record ({exc}); is the service still running? "
                               "(systemctl stop edge-emotion)") from None
    return buf


def read_file(path: str, channels: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of an audio file: mono, or its first ``channels`` channels (fewer is an error)."""
    from edge.capture import media

    if channels <= 1:
        return media.read_audio_file(path, SAMPLE_RATE)[:int(seconds * SAMPLE_RATE)]
    x = media.read_audio_channels(path, SAMPLE_RATE)
    if x.shape[1] < channels:
        raise ValueError(f"audio file '{media.redact(path)}': {x.shape[1]} channel(s), the config's "
                         f"microphone.channels is {channels}")
    return x[:int(seconds * SAMPLE_RATE), :channels]


def cli(args: argparse.Namespace) -> int:
    """Record (or read ``--file``), assess what the voice model would get and print; exit 0 when usable, 2 when the
    level needs fixing or nothing could be checked."""
    from edge.capture.audio import classify_audio_source
    from edge.capture.media import MediaError
    from edge.ops.mic_check import Settings, assess, render

    try:
        settings, channels, source, kind = Settings(), 1, args.device, "device"
        if args.config is not None:
            from edge.config import load_config
            from edge.config_check import read_env_file
            from edge.voicegate.gate import make_gate

            if args.env_file is not None:
                os.environ.update(read_env_file(args.env_file))
            cfg = load_config(args.config, credentials=False)  # the broker's password is not needed here
            a = cfg.analysis
            channels = cfg.microphone.channels
            settings = Settings(a.min_speech_ratio, a.vad_aggressiveness, a.voice_hop_s,
                                make_gate(cfg) if channels > 1 else None)
            if source is None:
                source, kind = cfg.microphone.source, classify_audio_source(cfg.microphone.source, cfg.microphone.kind)
                if kind == "file":
                    source = str(cfg.resolve(source))  # as the service opens it: relative to the config's folder
        if args.file is not None:
            source, kind = str(args.file), "file"
        if kind == "file":
            audio = read_file(str(source), channels, args.seconds)
        else:
            audio = record(source or "default", channels, args.seconds)
        rep = assess(audio, settings)
    except (MediaError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(rep))
    return 0 if rep.ok else 2


def add_subcommand(sub: Any) -> None:
    """Register ``check-microphone`` on the CLI's subparsers."""
    p = sub.add_parser("check-microphone", help="record someone talking at the counter; say whether the "
                       "microphone's level suits the voice model and how to change the gain (exit 2: fix it)")
    p.add_argument("--config", "-c", type=Path, help="kiosk TOML: its microphone (source, channels), staff-voice "
                   "gate and analysis settings (min_speech_ratio, vad_aggressiveness, voice_hop_s)")
    p.add_argument("--env-file", type=Path, help="read ${VAR} values from this systemd EnvironmentFile first, as the "
                   "unit does (KEY=VALUE lines)")
    p.add_argument("--device", help="input device (default: the config's microphone.source, else 'default')")
    p.add_argument("--seconds", type=positive(" of seconds", least=3, most=120), default=10.0,
                   help="seconds to record, or to read of --file (3-120, default 10)")
    p.add_argument("--file", type=Path, help="check a recording instead of the microphone (wav/flac; with a "
                   "multichannel --config its channels go through the staff-voice gate, else mixed to mono)")
    p.set_defaults(func=cli)
