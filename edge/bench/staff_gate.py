"""``edge-emotion bench staff-gate``: how much staff speech reaches the voice model through each staff-voice gate.

Simulated counter rooms (``rooms.py``) with corpus speech: 2 s windows every 0.25 s, as the service takes them, go
through each gate and then the VAD the voice model sits behind. Per gate: the share of staff-only speech windows
that reach the voice model (leak), of customer-only windows the gate keeps, and of overlapping windows it drops;
CPU per window. The direction gates' sectors come from the calibration procedure run on each room.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.rooms import FOUR_MIC, RATE, SPEECH_DIR, TWO_MIC, Room, simulate, speakers
from edge.voice.vad import FRAME as VAD_FRAME
from edge.voice.vad import Vad
from edge.voicegate.calibrate import CalibrationError, propose
from edge.voicegate.doa import DirectionEstimator
from edge.voicegate.gate import ChannelGate, DirectionGate, UngatedVoice, VoiceGate

log = logging.getLogger(__name__)

WIN, HOP = 2 * RATE, RATE // 4
MIN_SPEECH = 0.3  # analysis.min_speech_ratio's default: what the VAD needs to pass a window to the model
GATES = ("none", "channel", "direction-2mic", "direction-4mic")
MEASURED = Path(__file__).resolve().parents[1] / "voicegate" / "measured.json"  # read by the privacy report


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _sectors(room: Room, array: str) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """Calibrated (staff, customer) sectors of an array in this room; the true directions +-50 when it fails."""
    est = DirectionEstimator(TWO_MIC if array == "two" else FOUR_MIC)
    try:
        s, c, _ = propose(room.calibration[array]["staff"], room.calibration[array]["customer"], est)
        return s, c, True
    except CalibrationError as exc:
        log.info("room %d, %s array: calibration failed (%s); true directions used", room.seed, array, exc)
        t = room.truth_deg[array]
        if est.linear:
            return ((max(0.0, t["staff"] - 50), min(180.0, t["staff"] + 50)),
                    (max(0.0, t["customer"] - 50), min(180.0, t["customer"] + 50)), False)
        return ((t["staff"] - 50) % 360, (t["staff"] + 50) % 360), ((t["customer"] - 50) % 360,
                                                                      (t["customer"] + 50) % 360), False


def gates(room: Room) -> dict[str, tuple[VoiceGate, np.ndarray, bool]]:
    """Each gate with the audio it gets in this room and whether its calibration worked."""
    s2, c2, ok2 = _sectors(room, "two")
    s4, c4, ok4 = _sectors(room, "four")
    return {"none": (UngatedVoice(), room.mics["kiosk_mic"], True),
            "channel": (ChannelGate(0), np.stack([room.mics["staff_mic"], room.mics["kiosk_mic"]], axis=1), True),
            "direction-2mic": (DirectionGate(TWO_MIC.tolist(), s2, c2), room.mics["two"], ok2),
            "direction-4mic": (DirectionGate(FOUR_MIC.tolist(), s4, c4), room.mics["four"], ok4)}


def window_kind(staff: float, customer: float) -> str | None:
    """Ground truth of a window from its talkers' speech shares: staff / customer (alone), overlap, or None."""
    if staff >= MIN_SPEECH and customer == 0:
        return "staff"
    if customer >= MIN_SPEECH and staff == 0:
        return "customer"
    if staff >= 0.1 and customer >= 0.1:
        return "overlap"
    return None


def evaluate(room: Room) -> dict[str, dict[str, Any]]:
    """Counts per gate in one room: windows of each kind, passed by the gate, reaching the model; CPU per window."""
    out: dict[str, dict[str, Any]] = {}
    n = room.mics["kiosk_mic"].shape[0]
    for name, (gate, audio, calibrated) in gates(room).items():
        vad = Vad(2)
        c: dict[str, Any] = {"calibrated": calibrated, "cpu_s": 0.0, "windows": 0}
        for end in range(WIN, n + 1, HOP):
            f0, f1 = (end - WIN) // VAD_FRAME, end // VAD_FRAME
            kind = window_kind(float(room.talking["staff"][f0:f1].mean()),
                               float(room.talking["customer"][f0:f1].mean()))
            t0 = time.process_time()
            d = gate.decide(audio[end - WIN:end], end)
            c["cpu_s"] += time.process_time() - t0
            c["windows"] += 1
            if kind is None:
                continue
            reached = d.audio is not None and vad.speech_ratio(d.audio) >= MIN_SPEECH
            for key, val in ((kind, 1), (f"{kind}_passed", d.audio is not None), (f"{kind}_reached", reached)):
                c[key] = c.get(key, 0) + int(val)
        out[name] = c
    return out


def summarise(per_room: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and shares per gate over every room, with 95 % Wilson intervals."""
    out: dict[str, Any] = {}
    for g in GATES:
        tot: dict[str, float] = {}
        for r in per_room:
            for k, v in r["gates"][g].items():
                tot[k] = tot.get(k, 0) + float(v)
        s: dict[str, Any] = {"staff_windows": int(tot.get("staff", 0)), "customer_windows": int(tot.get("customer", 0)),
             "overlap_windows": int(tot.get("overlap", 0)),
             "cpu_ms_per_window": round(1000 * tot["cpu_s"] / max(tot["windows"], 1), 3),
             "rooms_calibrated": int(tot.get("calibrated", 0))}
        for key, num, den in (("staff_leak", "staff_reached", "staff"),
                              ("staff_passed_gate", "staff_passed", "staff"),
                              ("customer_kept", "customer_passed", "customer"),
                              ("customer_reached", "customer_reached", "customer"),
                              ("overlap_dropped", None, "overlap")):
            n = int(tot.get(den, 0))
            k = n - int(tot.get("overlap_passed", 0)) if num is None else int(tot.get(num, 0))
            lo, hi = wilson(k, n)
            s[key] = {"share": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}
        out[g] = s
    return out


def run(rooms: int, seed: int, data: Path = SPEECH_DIR) -> dict[str, Any]:
    """Simulate ``rooms`` counters and evaluate every gate; the per-room counts and the summaries."""
    pool = speakers(data)
    if len(pool) < 2:
        raise RuntimeError(f"no speech corpora under {data} (../shared/data/speech): the benchmark needs them")
    per_room: list[dict[str, Any]] = []
    for i in range(rooms):
        t0 = time.monotonic()
        room = simulate(seed * 1000 + i, pool)
        per_room.append({"seed": room.seed, "rt60_s": round(room.rt60_s, 3), "gates": evaluate(room)})
        log.info("room %d/%d: RT60 %.2f s, %.1f s", i + 1, rooms, room.rt60_s, time.monotonic() - t0)
    bands = {"RT60 < 0.6 s": [r for r in per_room if r["rt60_s"] < 0.6],
             "RT60 >= 0.6 s": [r for r in per_room if r["rt60_s"] >= 0.6]}
    return {"rooms": per_room, "summary": summarise(per_room),
            "by_rt60": {k: summarise(v) for k, v in bands.items() if v}}


def _pct(x: dict[str, Any]) -> str:
    if x["share"] is None:
        return "n/a"
    return f"{100 * x['share']:.1f} % ({x['k']}/{x['n']}; 95 % CI {100 * x['ci95'][0]:.1f}-{100 * x['ci95'][1]:.1f})"


def markdown(res: dict[str, Any], command: str, machine: str, date: str) -> str:
    """The benchmark page (docs/bench/staff_gate.md)."""
    rt = [r["rt60_s"] for r in res["rooms"]]
    s = res["summary"]
    lines = [
        "# Staff-voice gate: simulated counters", "",
        f"Command: `{command}`  ", f"Date: {date}  ", f"Machine: {machine}", "",
        f"{len(rt)} simulated counter rooms (pyroomacoustics image-source model; room 4-8 x 4-7 x 2.7-3.3 m, "
        f"Sabine design RT60 0.2-0.6 s, measured on the simulated impulse responses {min(rt):.2f}-{max(rt):.2f} s, "
        "median " f"{float(np.median(rt)):.2f} s). The kiosk sits on the counter; the staff sit 0.5-0.9 m behind "
        "it, the customer stands 0.5-1.0 m in front (lateral offsets up to 0.35 m, mouths at 1.15-1.3 m and "
        "1.45-1.75 m). Each room has two talkers from different speakers of the staged corpora (RAVDESS, EmoDB, "
        "URDU, ASED, CREMA-D; speech levelled to -26 dBFS +-3 dB), who talk in turns: staff alone, customer "
        "alone, both at once, customer, staff (~25 s), with white noise at 15-30 dB SNR at every microphone.", "",
        "Gates (default thresholds: a window is dropped when more than 10 % of its speech frames are the staff's "
        "or fewer than 50 % clearly the customer's):", "",
        "- `none`: the kiosk's front microphone, no gate (what the product did before issue 23);",
        "- `channel`: a staff microphone on the staff's desk (0.25-0.4 m from the staff's mouth) against the "
        "kiosk's front microphone, margin 3 dB;",
        "- `direction-2mic`: a 2-mic array (58 mm) on the kiosk, its axis towards the staff +-15 degrees;",
        "- `direction-4mic`: a 4-mic circular array (32 mm radius) on the kiosk, at a random rotation.", "",
        "The direction gates' sectors come from the calibration procedure (`edge-emotion calibrate-direction`: "
        "8 s of each side talking alone, other clips of the same talkers) run in each room; where it refused a "
        "room (the two sides' directions overlapping), the true directions +-50 degrees were used (column *rooms "
        "calibrated*).", "",
        "Windows: 2 s every 0.25 s, as the service takes them. A window is *staff-only* when the staff speak in "
        ">= 30 % of its 30 ms frames and the customer in none (dry tracks, webrtcvad), *customer-only* the other "
        "way round, *overlap* when both speak in >= 10 %. *Reaches the voice model* = the gate passes it and the "
        "voice analyzer's VAD finds >= 30 % speech in what the gate passes (the model runs only then).", "",
        "| gate | staff-only windows reaching the voice model (target <= 2 %) | customer-only windows kept by "
        "the gate (target >= 90 %) | customer-only reaching the model | overlap windows dropped | CPU per window "
        "| rooms calibrated |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in GATES:
        x = s[g]
        lines.append(f"| `{g}` | {_pct(x['staff_leak'])} | {_pct(x['customer_kept'])} | "
                     f"{_pct(x['customer_reached'])} | {_pct(x['overlap_dropped'])} | "
                     f"{x['cpu_ms_per_window']:.2f} ms | {x['rooms_calibrated']}/{len(rt)} |")
    for band, sb in res["by_rt60"].items():
        n = sum(1 for r in res["rooms"] if (r["rt60_s"] < 0.6) == band.startswith("RT60 <"))
        lines += ["", f"{band} ({n} rooms):", "", "| gate | staff-only reaching the model | customer-only kept | "
                  "overlap dropped |", "|---|---|---|---|"]
        lines += [f"| `{g}` | {_pct(sb[g]['staff_leak'])} | {_pct(sb[g]['customer_kept'])} | "
                  f"{_pct(sb[g]['overlap_dropped'])} |" for g in GATES]
    lines += ["", "CPU per window: `time.process_time` of the gate's decision per 2 s window, streaming (directions "
              "of frames shared with the previous window are reused, as in the service), on this machine while "
              "other jobs ran. Not measured: real rooms and microphones, talkers moving or turning, other "
              "customers queueing behind, loud non-speech noise sources (music, announcements), the staff leaning "
              "over the counter into the customer's sector.", ""]
    return "\n".join(lines)


def cli(args: argparse.Namespace) -> int:
    """``edge-emotion bench staff-gate``: run, print the summary, write JSON (and Markdown, measured.json)."""
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        print("error: the staff-gate benchmark needs pyroomacoustics: pip install -e .[sim]", file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else SPEECH_DIR
    try:
        res = run(args.rooms, args.seed, data)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "edge-emotion bench staff-gate" + f" --rooms {args.rooms} --seed {args.seed}" + (
        f" --markdown {args.markdown}" if args.markdown else "")
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = _machine()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "staff_gate.json").write_text(json.dumps({"command": command, "date": date, "machine": machine,
                                                          **res}, indent=1))
    print(json.dumps(res["summary"], indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(res, command, machine, date), encoding="utf-8")
        MEASURED.write_text(json.dumps({"command": command, "date": date, "rooms": args.rooms,
                                        "page": "docs/bench/staff_gate.md", "gates": {
                                            g: {k: res["summary"][g][k] for k in ("staff_leak", "customer_kept",
                                                                                   "overlap_dropped")}
                                            for g in GATES}}, indent=1) + "\n", encoding="utf-8")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {_cpus()} cores, Python {platform.python_version()}"
