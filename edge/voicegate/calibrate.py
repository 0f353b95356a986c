"""``edge-emotion calibrate-direction``: record each side of the counter talking and print the sectors to configure.

The staff talk for a few seconds, then the customer side (a colleague standing where customers stand); each speech
frame's direction of arrival is measured with the same estimator as the gate (smoothed over its neighbours alike),
and each side's sector is the central 90 % of its directions widened by a margin, but never past the bisector
between the two sides. Recording (sounddevice) happens only in ``record``; the rest is pure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.privacy.gate_config import in_sector
from edge.voicegate.doa import DirectionEstimator, frame_power, smooth
from edge.voicegate.gate import DIRECTION_SPAN, speech_frames

log = logging.getLogger(__name__)
RATE = 16000
MIN_HELD = 0.8  # a side's sector must hold at least this share of its own calibration frames
MARGIN_DEG = 15.0  # degrees added on each side of a sector (swept 5-25 by the staff-gate benchmark)


class CalibrationError(ValueError):
    """The recordings cannot give usable sectors; the message says why and what to change."""


def directions(audio: np.ndarray, est: DirectionEstimator, min_coherence: float = 0.15,
               span: int = DIRECTION_SPAN) -> np.ndarray:
    """Azimuths (degrees) of the coherent speech frames of a (samples, channels) recording, in 2 s windows, each
    frame smoothed over its speech neighbours within ``span`` frames as the gate does."""
    out = []
    for start in range(0, max(1, audio.shape[0] - RATE), 2 * RATE):
        frames, active, _ = speech_frames(audio[start:start + 2 * RATE])
        speech = frames[active]
        resp = smooth(est.responses(speech), frame_power(speech).mean(axis=1), np.flatnonzero(active), span)
        az, coh = est.peaks(resp)
        out.append(az[coh >= min_coherence])
    return np.concatenate(out) if out else np.zeros(0)


def _spread(az: np.ndarray, centre: float, linear: bool, share: float) -> tuple[float, float]:
    """The central ``share`` of ``az`` as (low, high) offsets from ``centre`` (degrees, wrapped when circular)."""
    dev = az - centre if linear else (az - centre + 180.0) % 360.0 - 180.0
    lo, hi = np.percentile(dev, [50 * (1 - share), 50 * (1 + share)])
    return float(lo), float(hi)


def _median(az: np.ndarray, linear: bool) -> float:
    if linear:
        return float(np.median(az))
    rad = np.deg2rad(az)
    mean = float(np.rad2deg(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))
    return (mean + float(np.median((az - mean + 180.0) % 360.0 - 180.0))) % 360.0


def sectors(s_az: np.ndarray, c_az: np.ndarray, linear: bool, margin_deg: float = MARGIN_DEG,
            guard_deg: float = 5.0, share: float = 0.9) -> tuple[tuple[float, float], tuple[float, float]]:
    """Each side's central ``share`` widened by ``margin_deg``, never past the bisector between the two sides."""
    ms, mc = _median(s_az, linear), _median(c_az, linear)
    out = []
    for az, me, other in ((s_az, ms, mc), (c_az, mc, ms)):
        lo, hi = _spread(az, me, linear, share)
        if linear:  # the allowed range: up to the bisector towards the other side, 0..180 elsewhere
            half = (other - me) / 2.0
            lim_lo, lim_hi = (-me, half - guard_deg) if half > 0 else (half + guard_deg, 180.0 - me)
        else:
            phi = (other - me) % 360.0  # the other side's direction, counter-clockwise from this one
            lim_lo, lim_hi = phi / 2.0 - 180.0 + guard_deg, phi / 2.0 - guard_deg
        lo, hi = max(lo - margin_deg, lim_lo), min(hi + margin_deg, lim_hi)
        if hi - lo < 10.0:
            raise CalibrationError("the two sides' directions overlap (staff around "
                                   f"{ms:.0f}, customer around {mc:.0f} degrees): turn the array so that staff and "
                                   "customer are on opposite sides of it (a 2-mic array: along its axis)")
        out.append((me + lo, me + hi) if linear else ((me + lo) % 360.0, (me + hi) % 360.0))
    return out[0], out[1]


def propose(staff: np.ndarray, customer: np.ndarray, est: DirectionEstimator, margin_deg: float = MARGIN_DEG,
            span: int = DIRECTION_SPAN,
            min_coherence: float = 0.15) -> tuple[tuple[float, float], tuple[float, float], dict[str, Any]]:
    """(staff sector, customer sector, figures) from the two recordings; CalibrationError when they overlap."""
    s_az = directions(staff, est, min_coherence, span)
    c_az = directions(customer, est, min_coherence, span)
    for name, az in (("staff", s_az), ("customer", c_az)):
        if az.size < 20:
            raise CalibrationError(f"{name} recording: only {az.size} speech frames with a clear direction; talk "
                                   "for longer, closer to the array, or check the microphone channels")
    s, c = sectors(s_az, c_az, est.linear, margin_deg)
    figures = {"staff_frames": int(s_az.size), "customer_frames": int(c_az.size),
               "staff_in_customer_sector": float(np.mean([in_sector(a, c) for a in s_az])),
               "customer_in_staff_sector": float(np.mean([in_sector(a, s) for a in c_az])),
               "staff_in_staff_sector": float(np.mean([in_sector(a, s) for a in s_az])),
               "customer_in_customer_sector": float(np.mean([in_sector(a, c) for a in c_az]))}
    for side in ("staff", "customer"):
        if figures[f"{side}_in_{side}_sector"] < MIN_HELD:
            raise CalibrationError(f"the two sides' directions overlap: only {figures[f'{side}_in_{side}_sector']:.0%}"
                                   f" of the {side}'s speech frames fit a sector clear of the other side's; turn the "
                                   "array so that staff and customer are on opposite sides of it")
    return s, c, figures


def _fmt(s: tuple[float, float]) -> str:
    return f"[{s[0]:.0f}, {s[1]:.0f}]"


def toml_snippet(positions: list[tuple[float, float]], staff: tuple[float, float],
                 customer: tuple[float, float]) -> str:
    """The ``[privacy.direction]`` section to paste into the kiosk's TOML."""
    pts = ", ".join(f"[{x:g}, {y:g}]" for x, y in positions)
    return ("[privacy]\nstaff_voice_gate = \"direction\"\n\n[privacy.direction]\n"
            f"mic_positions_m = [{pts}]\nstaff_sector_deg = {_fmt(staff)}\ncustomer_sector_deg = {_fmt(customer)}\n")


def record(device: str, channels: int, seconds: float, who: str) -> np.ndarray:
    """Record ``seconds`` of ``channels``-channel audio from ``device`` after a prompt (blocking; a CLI only)."""
    from edge.capture import media

    sd = media._sounddevice()
    dev = media.resolve_input_device(device)
    media.check_input_channels(device, dev, channels)
    print(f"{who}: talk normally for {seconds:g} s from your usual place, starting in 2 s ...", file=sys.stderr)
    time.sleep(2.0)
    audio = sd.rec(int(seconds * RATE), samplerate=RATE, channels=channels, dtype="float32", device=dev)
    sd.wait()
    return np.asarray(audio, np.float32)


def _positions(text: str) -> list[tuple[float, float]]:
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in text.split()]
    except ValueError:
        raise CalibrationError(f"--mics {text!r}: expected 'x,y x,y ...' in metres") from None
    if len(pts) < 2 or any(len(p) != 2 for p in pts):
        raise CalibrationError(f"--mics {text!r}: expected at least two 'x,y' positions in metres")
    return [(p[0], p[1]) for p in pts]


def cli(args: argparse.Namespace) -> int:
    """Run the calibration: recordings (or files) in, sectors and a TOML snippet out; exit 2 when unusable."""
    from edge.capture.media import read_audio_channels
    from edge.config import load_config

    try:
        positions = _positions(args.mics) if args.mics else None
        device, channels, coherence = args.device, None, 0.15
        if args.config is not None:
            cfg = load_config(args.config)
            device = device or cfg.microphone.source
            channels = cfg.microphone.channels
            if cfg.privacy.direction is not None:
                coherence = cfg.privacy.direction.min_coherence
                if positions is None:
                    positions = list(cfg.privacy.direction.mic_positions_m)
        if positions is None:
            raise CalibrationError("give the microphone positions: --mics 'x,y x,y ...' or a --config with "
                                   "[privacy.direction] mic_positions_m")
        channels = channels or len(positions)
        est = DirectionEstimator(positions)
        if args.staff_file and args.customer_file:
            staff = read_audio_channels(args.staff_file)[:, :len(positions)]
            customer = read_audio_channels(args.customer_file)[:, :len(positions)]
        else:
            staff = record(device or "default", channels, args.seconds, "STAFF")[:, :len(positions)]
            customer = record(device or "default", channels, args.seconds, "CUSTOMER side")[:, :len(positions)]
        s, c, fig = propose(staff, customer, est, args.margin, min_coherence=coherence)
    except CalibrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    space = "0..180 degrees from the array's axis (mic 0 -> mic 1)" if est.linear else "0..360 degrees from +x"
    print(f"# directions measured in {space}: staff {fig['staff_frames']} speech frames "
          f"({fig['staff_in_staff_sector']:.0%} in its sector, {fig['staff_in_customer_sector']:.1%} in the "
          f"customer's), customer {fig['customer_frames']} ({fig['customer_in_customer_sector']:.0%} in its "
          f"sector, {fig['customer_in_staff_sector']:.1%} in the staff's)")
    print(toml_snippet(positions, s, c), end="")
    return 0


def add_subcommand(sub: Any) -> None:
    """Register ``calibrate-direction`` on the CLI's subparsers."""
    p = sub.add_parser("calibrate-direction", help="record staff and customer talking; print the direction sectors")
    p.add_argument("--config", "-c", type=Path, help="kiosk TOML: its microphone and [privacy.direction] positions")
    p.add_argument("--mics", help="microphone positions in metres, 'x,y x,y ...' in channel order (2-mic HAT: "
                   "'-0.029,0 0.029,0')")
    p.add_argument("--device", help="input device (default: the config's microphone.source, else 'default')")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds each side talks")
    p.add_argument("--margin", type=float, default=MARGIN_DEG, help="degrees added on each side of a sector")
    p.add_argument("--staff-file", type=Path, help="a multichannel recording of the staff talking instead")
    p.add_argument("--customer-file", type=Path, help="...and of the customer side")
    p.set_defaults(func=cli)
