"""``edge-emotion bench staff-gate``: how much staff speech reaches the voice model through each staff-voice gate.

Simulated counter rooms (``rooms.py``) with corpus speech: 2 s windows every 0.25 s, as the service takes them, go
through each gate at its defaults and then the VAD the voice model sits behind. Per gate: the share of staff-only
speech windows that reach the voice model (leak), of customer-only windows the gate keeps, and of overlapping windows
it drops, why windows were dropped, CPU per window. The direction gates' sectors come from the calibration procedure
run on each room. The same windows are judged under every threshold and variant of the sweep
(``staff_gate_sweep.py``), on these test rooms and on tuning rooms of another seed, where the operating point (the
defaults) is chosen.
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

from edge.bench import staff_gate_sweep as sw
from edge.bench.rooms import FOUR_MIC, RATE, SPEECH_DIR, TWO_MIC, Room, simulate, speakers
from edge.privacy.config import PrivacyConfig
from edge.privacy.gate_config import DirectionConfig
from edge.voice.vad import FRAME as VAD_FRAME
from edge.voice.vad import Vad
from edge.voicegate.calibrate import MARGIN_DEG
from edge.voicegate.doa import DirectionEstimator
from edge.voicegate.gate import CHANNEL_SPAN, DIRECTION_SPAN, ChannelGate, DirectionGate, UngatedVoice, VoiceGate

log = logging.getLogger(__name__)

WIN, HOP = 2 * RATE, RATE // 4
MIN_SPEECH = 0.3  # analysis.min_speech_ratio's default: what the VAD needs to pass a window to the model
GATES = ("none", "channel", "direction-2mic", "direction-4mic")
TUNE_SEED, TUNE_ROOMS = 101, 48  # the tuning rooms the operating point is chosen on (never the test rooms)
CONFIRM_SEED, CONFIRM_ROOMS = 57, 24  # fresh rooms, run once the defaults were fixed (the test rooms had been seen)
BOOTSTRAP = 2000  # room resamples for the intervals: windows of one room are not independent
# The gate as it was before smoothing (issue 23, item 4): each frame alone; the sweep's variant of it.
BEFORE = {"channel": sw.key(margin_db=3.0, span=0), "direction": sw.key(span=0, min_coherence=0.15,
                                                                          sector_margin_deg=15.0)}
BEFORE_SHARES = (0.1, 0.5)
# What a first form of ``choose`` (pooled tuning figures only, thresholds free) picked; shown on the page.
EARLIER = {"channel": sw.key(margin_db=3.0, span=1), "direction": sw.key(span=2, min_coherence=0.2,
                                                                           sector_margin_deg=25.0)}
EARLIER_SHARES = (0.05, 0.4)
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


def defaults() -> dict[str, Any]:
    """The gate settings in force by default: the config's thresholds and the gate's and calibration's constants."""
    p, d = PrivacyConfig.model_fields, DirectionConfig.model_fields
    return {"max_staff_share": float(p["staff_voice_max_share"].default),
            "min_customer_share": float(p["customer_voice_min_share"].default),
            "margin_db": float(p["staff_voice_margin_db"].default), "channel_span": CHANNEL_SPAN,
            "min_coherence": float(d["min_coherence"].default), "direction_span": DIRECTION_SPAN,
            "sector_margin_deg": MARGIN_DEG}


def default_variants(d: dict[str, Any]) -> dict[str, str]:
    """The sweep's names of the default channel and direction variants."""
    return {"channel": sw.key(margin_db=d["margin_db"], span=d["channel_span"]),
            "direction": sw.key(span=d["direction_span"], min_coherence=d["min_coherence"],
                                sector_margin_deg=d["sector_margin_deg"])}


def gates(room: Room, d: dict[str, Any]) -> dict[str, tuple[VoiceGate, np.ndarray, bool]]:
    """Each gate at the defaults ``d`` with the audio it gets in this room and whether its calibration worked."""
    shares = (d["max_staff_share"], d["min_customer_share"])
    out: dict[str, tuple[VoiceGate, np.ndarray, bool]] = {
        "none": (UngatedVoice(*shares), room.mics["kiosk_mic"], True),
        "channel": (ChannelGate(0, d["margin_db"], *shares, span=d["channel_span"]),
                    np.stack([room.mics["staff_mic"], room.mics["kiosk_mic"]], axis=1), True)}
    for name, array, pos in (("direction-2mic", "two", TWO_MIC), ("direction-4mic", "four", FOUR_MIC)):
        est = DirectionEstimator(pos, RATE)
        s, c, ok = sw.calibrated_sectors(room, array, est, d["sector_margin_deg"], d["direction_span"],
                                         d["min_coherence"])
        out[name] = (DirectionGate(pos.tolist(), s, c, d["min_coherence"], *shares, rate=RATE,
                                   span=d["direction_span"]), room.mics[array], ok)
    return out


def window_kind(staff: float, customer: float) -> str | None:
    """Ground truth of a window from its talkers' speech shares: staff / customer (alone), overlap, or None."""
    if staff >= MIN_SPEECH and customer == 0:
        return "staff"
    if customer >= MIN_SPEECH and staff == 0:
        return "customer"
    if staff >= 0.1 and customer >= 0.1:
        return "overlap"
    return None


def evaluate(room: Room, d: dict[str, Any],
             sweep: bool = True) -> tuple[dict[str, dict[str, Any]], dict[str, sw.GateWindows]]:
    """One room: per gate at the defaults, windows of each kind, passed by the gate, reaching the model, verdicts
    per kind, CPU per window; and (``sweep``) every gate's windows under every variant of the sweep."""
    out: dict[str, dict[str, Any]] = {}
    labelled: dict[str, list[tuple[int, str, bool]]] = {}
    audios: dict[str, np.ndarray] = {}
    n = room.mics["kiosk_mic"].shape[0]
    for name, (gate, audio, calibrated) in gates(room, d).items():
        audios[name] = audio
        c: dict[str, Any] = {"calibrated": calibrated, "cpu_s": 0.0, "windows": 0, "verdicts": {}}
        rows: list[tuple[int, str, bool]] = []
        for end in range(WIN, n + 1, HOP):
            f0, f1 = (end - WIN) // VAD_FRAME, end // VAD_FRAME
            kind = window_kind(float(room.talking["staff"][f0:f1].mean()),
                               float(room.talking["customer"][f0:f1].mean()))
            t0 = time.process_time()
            dec = gate.decide(audio[end - WIN:end], end)
            c["cpu_s"] += time.process_time() - t0
            c["windows"] += 1
            if kind is None:
                continue
            # the model's VAD, afresh on each window's audio (webrtcvad adapts: judged alike whatever passed before)
            ok = Vad(2).speech_ratio(gate.mono(audio[end - WIN:end])) >= MIN_SPEECH
            rows.append((end, kind, ok))
            v = c["verdicts"].setdefault(kind, {})
            v[dec.verdict] = v.get(dec.verdict, 0) + 1
            for key, val in ((kind, 1), (f"{kind}_passed", dec.audio is not None),
                             (f"{kind}_reached", dec.audio is not None and ok)):
                c[key] = c.get(key, 0) + int(val)
        out[name] = c
        labelled[name] = rows
    if not sweep:
        return out, {}
    sweeps = {"channel": sw.sweep_channel(audios["channel"], labelled["channel"], WIN),
              "direction-2mic": sw.sweep_direction(room, "two", labelled["direction-2mic"], WIN),
              "direction-4mic": sw.sweep_direction(room, "four", labelled["direction-4mic"], WIN)}
    variants = default_variants(d)
    for name, gw in sweeps.items():  # the sweep's default variant must judge every window as the gate did
        v = variants["channel" if name == "channel" else "direction"]
        got = sw.verdicts(np.array(gw.shares[v], np.float64).reshape(-1, 3), d["max_staff_share"],
                          d["min_customer_share"])
        tally: dict[str, dict[str, int]] = {}
        for kind, verdict in zip(gw.kind, got, strict=True):
            tally.setdefault(kind, {})[str(verdict)] = tally.setdefault(kind, {}).get(str(verdict), 0) + 1
        out[name]["sweep_agrees"] = tally == out[name]["verdicts"]
    return out, sweeps


def bootstrap(rows: list[tuple[int, int]], reps: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """95 % interval of a pooled share k/n by resampling rooms (rows of per-room (k, n))."""
    if not rows or sum(n for _, n in rows) == 0:
        return 0.0, 1.0
    kn = np.array(rows, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(rows), size=(reps, len(rows)))
    k, n = kn[idx, 0].sum(axis=1), kn[idx, 1].sum(axis=1)
    share = k[n > 0] / n[n > 0]
    lo, hi = np.percentile(share, [2.5, 97.5])
    return float(lo), float(hi)


def _figure(rows: list[tuple[int, int]]) -> dict[str, Any]:
    """Pooled share of per-room (k, n) rows; ``ci95`` the wider of the room-resampled and the Wilson interval."""
    k, n = sum(r[0] for r in rows), sum(r[1] for r in rows)
    lo, hi = bootstrap(rows)
    wl, wh = wilson(k, n)
    return {"share": round(k / n, 4) if n else None, "k": k, "n": n,
            "ci95": [round(min(lo, wl), 4), round(max(hi, wh), 4)], "ci95_rooms": [round(lo, 4), round(hi, 4)],
            "ci95_windows": [round(wl, 4), round(wh, 4)]}


def summarise(per_room: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and shares per gate over every room; 95 % intervals by room resampling (and Wilson over windows)."""
    out: dict[str, Any] = {}
    for g in GATES:
        gs = [r["gates"][g] for r in per_room]
        tot_cpu, tot_win = sum(x["cpu_s"] for x in gs), sum(x["windows"] for x in gs)
        s: dict[str, Any] = {f"{k}_windows": sum(x.get(k, 0) for x in gs) for k in sw.KINDS}
        s.update({"cpu_ms_per_window": round(1000 * tot_cpu / max(tot_win, 1), 3),
                  "rooms_calibrated": sum(int(x["calibrated"]) for x in gs),
                  "sweep_agrees": all(x.get("sweep_agrees", True) for x in gs)})
        for key, num, den in (("staff_leak", "staff_reached", "staff"), ("staff_passed_gate", "staff_passed", "staff"),
                              ("customer_kept", "customer_passed", "customer"),
                              ("customer_reached", "customer_reached", "customer")):
            s[key] = _figure([(x.get(num, 0), x.get(den, 0)) for x in gs])
        s["overlap_dropped"] = _figure([(x.get("overlap", 0) - x.get("overlap_passed", 0), x.get("overlap", 0))
                                        for x in gs])
        reasons: dict[str, dict[str, int]] = {}
        for x in gs:
            for kind, v in x["verdicts"].items():
                for verdict, cnt in v.items():
                    reasons.setdefault(kind, {})[verdict] = reasons.setdefault(kind, {}).get(verdict, 0) + cnt
        s["verdicts"] = reasons
        out[g] = s
    return out


def point(sweeps: dict[str, list[sw.GateWindows]], variants: dict[str, str],
          shares: tuple[float, float]) -> dict[str, Any]:
    """The three figures (room-resampled intervals) and verdicts per kind of each gated set-up at one point."""
    out = {}
    for g, rs in sweeps.items():
        c = sw.counts(rs, variants["channel" if g == "channel" else "direction"], *shares)
        out[g] = {**{k: _figure(v) for k, v in c["per_room"].items()}, "verdicts": c["reasons"]}
        out[g]["rooms_calibrated"] = sum(int(r.calibrated.get(variants["direction"], True)) for r in rs)
    return out


def _run_set(rooms: int, seed: int, pool: dict[str, list[Path]], d: dict[str, Any], label: str,
             sweep: bool = True) -> tuple[list[dict[str, Any]], dict[str, list[sw.GateWindows]]]:
    per_room: list[dict[str, Any]] = []
    sweeps: dict[str, list[sw.GateWindows]] = {}
    for i in range(rooms):
        t0 = time.monotonic()
        room = simulate(seed * 1000 + i, pool)
        counts, sw_room = evaluate(room, d, sweep)
        per_room.append({"seed": room.seed, "rt60_s": round(room.rt60_s, 3), "gates": counts})
        for g, gw in sw_room.items():
            sweeps.setdefault(g, []).append(gw)
        log.info("%s room %d/%d: RT60 %.2f s, %.1f s", label, i + 1, rooms, room.rt60_s, time.monotonic() - t0)
    return per_room, sweeps


def run(rooms: int, seed: int, data: Path = SPEECH_DIR, tune_rooms: int = 0, tune_seed: int = TUNE_SEED,
        confirm_rooms: int = 0, confirm_seed: int = CONFIRM_SEED) -> dict[str, Any]:
    """Simulate ``rooms`` test counters (and ``tune_rooms`` tuning ones, ``confirm_rooms`` fresh ones for the
    defaults only) and evaluate every gate and variant."""
    pool = speakers(data)
    if len(pool) < 2:
        raise RuntimeError(f"no speech corpora under {data} (../shared/data/speech): the benchmark needs them")
    seeds = [seed] + [tune_seed] * bool(tune_rooms) + [confirm_seed] * bool(confirm_rooms)
    if len(set(seeds)) < len(seeds):
        raise RuntimeError("the tuning and confirmation rooms need seeds of their own")
    d = defaults()
    variants = default_variants(d)
    if variants["channel"] not in sw.channel_keys() or variants["direction"] not in sw.direction_keys():
        raise RuntimeError(f"the defaults {variants} are not in the sweep's grid (staff_gate_sweep.py)")
    per_room, sweeps = _run_set(rooms, seed, pool, d, "test")
    bands = {"RT60 < 0.6 s": [r for r in per_room if r["rt60_s"] < 0.6],
             "RT60 >= 0.6 s": [r for r in per_room if r["rt60_s"] >= 0.6]}
    res: dict[str, Any] = {
        "defaults": d, "rooms": per_room, "summary": summarise(per_room),
        "by_rt60": {k: summarise(v) for k, v in bands.items() if v},
        "before": point(sweeps, BEFORE, BEFORE_SHARES),
        "sweep": {"seed": seed, "rooms": rooms, "table": sw.table(sweeps)}}
    if tune_rooms:
        t_rooms, t_sweeps = _run_set(tune_rooms, tune_seed, pool, d, "tuning")
        t_table = sw.table(t_sweeps)
        shares = (d["max_staff_share"], d["min_customer_share"])
        res["tuning"] = {"seed": tune_seed, "rooms": tune_rooms, "rt60_s": [r["rt60_s"] for r in t_rooms],
                         "table": t_table, "defaults": point(t_sweeps, variants, shares),
                         "before": point(t_sweeps, BEFORE, BEFORE_SHARES),
                         "choice": sw.choose(t_table, variants, shares),
                         "choice_with_thresholds": sw.choose(t_table, variants, shares, tune_config=True)}
    if confirm_rooms:
        c_rooms, _ = _run_set(confirm_rooms, confirm_seed, pool, d, "confirmation", sweep=False)
        res["confirmation"] = {"seed": confirm_seed, "rooms": confirm_rooms, "rt60_s": [r["rt60_s"] for r in c_rooms],
                               "summary": summarise(c_rooms)}
    return res


def _pct(x: dict[str, Any]) -> str:
    if x["share"] is None:
        return "n/a"
    return f"{100 * x['share']:.1f} % ({x['k']}/{x['n']}; 95 % CI {100 * x['ci95'][0]:.1f}-{100 * x['ci95'][1]:.1f})"


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


FIGS = ("staff_leak", "customer_kept", "overlap_dropped")
PARAMS = (("max_staff_share", "`privacy.staff_voice_max_share`", ("channel", "direction")),
          ("min_customer_share", "`privacy.customer_voice_min_share`", ("channel", "direction")),
          ("margin_db", "`privacy.staff_voice_margin_db` (dB)", ("channel",)),
          ("span", "smoothing span (frames either side; `CHANNEL_SPAN`, `DIRECTION_SPAN`)", ("channel", "direction")),
          ("min_coherence", "`privacy.direction.min_coherence`", ("direction",)),
          ("sector_margin_deg", "calibration sector margin (degrees, `calibrate-direction --margin`)", ("direction",)))


def tradeoff(res: dict[str, Any]) -> list[str]:
    """One table per parameter: the operating point with that one parameter varied, tuning and test figures."""
    d = res["defaults"]
    variants = default_variants(d)
    tabs = {"test": res["sweep"]["table"], "tuning": res["tuning"]["table"]} if "tuning" in res else {
        "test": res["sweep"]["table"]}
    grids: dict[str, tuple[float, ...]] = {
        "max_staff_share": sw.STAFF_SHARES, "min_customer_share": sw.CUSTOMER_SHARES, "margin_db": sw.CHANNEL_MARGINS,
        "span": sw.SPANS, "min_coherence": sw.COHERENCES, "sector_margin_deg": sw.SECTOR_MARGINS}
    sets = [s for s in ("tuning", "test") if s in tabs]
    head = "| gate | value | " + " | ".join(
        f"{s}: staff-only reaching the model | {s}: customer-only kept | {s}: overlap dropped" for s in sets) + " |"
    lines: list[str] = []
    for param, label, families in PARAMS:
        lines += ["", f"{label}:", "", head, "|---|---|" + "---|" * (3 * len(sets))]
        for g in ("channel", "direction-2mic", "direction-4mic"):
            fam = "channel" if g == "channel" else "direction"
            if fam not in families:
                continue
            for val in grids[param]:
                shares = {"max_staff_share": d["max_staff_share"], "min_customer_share": d["min_customer_share"]}
                var = sw.params(variants[fam])
                if param in shares:
                    shares[param] = val
                else:
                    var[param] = val
                name = sw.key(**var)
                k = f"{name}|{shares['max_staff_share']:g}|{shares['min_customer_share']:g}"
                here = name == variants[fam] and (shares["max_staff_share"], shares["min_customer_share"]) == (
                    d["max_staff_share"], d["min_customer_share"])
                val_s = f"**{val:g}** (default)" if here else f"{val:g}"
                cells = [_p(tabs[s][g][k][f]) for s in sets for f in FIGS]
                lines.append(f"| `{g}` | {val_s} | " + " | ".join(cells) + " |")
    return lines


def _share(v: dict[str, dict[str, int]], kind: str, verdict: str) -> str:
    x = v.get(kind, {})
    n = sum(x.values())
    return f"{100 * x.get(verdict, 0) / n:.1f} %" if n else "n/a"


def _reasons(v: dict[str, dict[str, int]], kind: str) -> str:
    x = v.get(kind, {})
    n = sum(x.values())
    if not n:
        return "n/a"
    return " / ".join(f"{100 * x.get(k, 0) / n:.1f}" for k in ("customer", "silent", "staff", "ambiguous"))


def _figs_at(table: dict[str, Any], variants: dict[str, str], shares: tuple[float, float],
             only: str | None = None) -> str:
    """One point of a sweep table as text: each gated set-up's figures (or only one of them)."""
    out = []
    for g in ("channel", "direction-2mic", "direction-4mic"):
        f = table[g][f"{variants['channel' if g == 'channel' else 'direction']}|{shares[0]:g}|{shares[1]:g}"]
        if only:
            out.append(f"`{g}` {_p(f[only])}")
        else:
            out.append(f"`{g}` {_p(f['staff_leak'])} staff-only reaching the model, {_p(f['customer_kept'])} "
                       f"customer-only kept, {_p(f['overlap_dropped'])} overlap dropped")
    return "; ".join(out)


def _choice_line(ch: dict[str, Any], d: dict[str, Any], what: str) -> str:
    if not ch.get("feasible"):
        return f"{what}: no combination met the constraints on the tuning rooms."
    chosen = {"max_staff_share": ch["max_staff_share"], "min_customer_share": ch["min_customer_share"],
              **{f"{f} {k}": v for f, var in ch["variants"].items() for k, v in sw.params(var).items()}}
    same = (ch["max_staff_share"], ch["min_customer_share"]) == (d["max_staff_share"], d["min_customer_share"]) \
        and ch["variants"] == default_variants(d)
    return (f"{what}: " + ", ".join(f"{k} {v:g}" for k, v in chosen.items())
            + (" - the defaults in force." if same else " - not the defaults in force."))


def markdown(res: dict[str, Any], command: str, machine: str, date: str) -> str:
    """The benchmark page (docs/bench/staff_gate.md)."""
    rt = [r["rt60_s"] for r in res["rooms"]]
    s, d = res["summary"], res["defaults"]
    seed = res["sweep"]["seed"]
    tune = res.get("tuning")
    lines = [
        "# Staff-voice gate: simulated counters", "",
        f"Command: `{command}`  ", f"Date: {date}  ", f"Machine: {machine}", "",
        f"{len(rt)} simulated counter rooms (seed {seed}; pyroomacoustics image-source model; room 4-8 x 4-7 x "
        f"2.7-3.3 m, Sabine design RT60 0.2-0.6 s, measured on the simulated impulse responses {min(rt):.2f}-"
        f"{max(rt):.2f} s, median {float(np.median(rt)):.2f} s). The kiosk sits on the counter; the staff sit "
        "0.5-0.9 m behind it, the customer stands 0.5-1.0 m in front (lateral offsets up to 0.35 m, mouths at "
        "1.15-1.3 m and 1.45-1.75 m). Each room has two talkers from different speakers of the staged corpora "
        "(RAVDESS, EmoDB, URDU, ASED, CREMA-D; speech levelled to -26 dBFS +-3 dB), who talk in turns: staff alone, "
        "customer alone, both at once, customer, staff (~25 s), with white noise at 15-30 dB SNR at every "
        "microphone."
        + (f" The thresholds were chosen on {tune['rooms']} other rooms of the same design (seed {tune['seed']}, "
           f"measured RT60 {min(tune['rt60_s']):.2f}-{max(tune['rt60_s']):.2f} s), never on these (*Trade-off* "
           "below)." if tune else ""), "",
        f"Gates at their defaults (a window is dropped when more than {100 * d['max_staff_share']:g} % of its "
        f"speech frames are the staff's or fewer than {100 * d['min_customer_share']:g} % clearly the customer's; "
        "each 32 ms speech frame is judged together with its speech neighbours up to "
        f"{d['channel_span']} (channel) / {d['direction_span']} (direction) frames either side):", "",
        "- `none`: the kiosk's front microphone, no gate (what the product did before issue 23);",
        "- `channel`: a staff microphone on the staff's desk (0.25-0.4 m from the staff's mouth) against the "
        f"kiosk's front microphone, margin {d['margin_db']:g} dB over the frame and its neighbours' summed power;",
        "- `direction-2mic`: a 2-mic array (58 mm) on the kiosk, its axis towards the staff +-15 degrees;",
        "- `direction-4mic`: a 4-mic circular array (32 mm radius) on the kiosk, at a random rotation; both "
        f"directional gates take a frame's direction from its steered response averaged with its neighbours' "
        f"(by power), clear from a peak of {d['min_coherence']:g}.", "",
        "The direction gates' sectors come from the calibration procedure (`edge-emotion calibrate-direction`: "
        f"8 s of each side talking alone, other clips of the same talkers, margin {d['sector_margin_deg']:g} "
        "degrees) run in each room; where it refused a room (the two sides' directions overlapping), the true "
        "directions +-50 degrees were used (column *rooms calibrated*).", "",
        "Windows: 2 s every 0.25 s, as the service takes them. A window is *staff-only* when the staff speak in "
        ">= 30 % of its 30 ms frames and the customer in none (dry tracks, webrtcvad), *customer-only* the other "
        "way round, *overlap* when both speak in >= 10 %. *Reaches the voice model* = the gate passes it and the "
        "voice analyzer's VAD, judging each window afresh, finds >= 30 % speech in it (the model runs only "
        f"then). Intervals: 95 %, the wider of two: resampling rooms ({BOOTSTRAP}x; a room's windows overlap and "
        "share talkers, so they are not independent) and Wilson's over windows (resampling says nothing when no "
        "window of any room leaks); both are in the JSON.", "",
        f"## Gates at their defaults (test rooms, seed {seed})", "",
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
    b = res["before"]
    lines += ["", "Before (each frame judged alone, as committed for issue 23 item 4: margin 3 dB, coherence 0.15, "
              "sector margin 15 degrees, shares 10 % / 50 %), same rooms and windows:", "",
              "| gate | staff-only reaching the model | customer-only kept | overlap dropped | rooms calibrated |",
              "|---|---|---|---|---|"]
    lines += [f"| `{g}` | {_pct(b[g]['staff_leak'])} | {_pct(b[g]['customer_kept'])} | "
              f"{_pct(b[g]['overlap_dropped'])} | {b[g]['rooms_calibrated']}/{len(rt)} |" for g in b]
    lines += ["", "## Why windows are dropped", "",
              "The gate's verdict on each window, in % of the windows of each kind: analysed (*customer*) / passed "
              "without speech frames (*silent*, the VAD drops them) / dropped as *staff* (more than the staff share "
              "of speech frames the staff's) / dropped as *ambiguous* (too few frames clearly the customer's).", "",
              "| gate | kind | before | now |", "|---|---|---|---|"]
    for g in ("channel", "direction-2mic", "direction-4mic"):
        for kind in sw.KINDS:
            lines.append(f"| `{g}` | {kind}-only | {_reasons(b[g]['verdicts'], kind)} | "
                         f"{_reasons(s[g]['verdicts'], kind)} |".replace("overlap-only", "overlap"))
    lost = "; ".join(f"`{g}` {_share(b[g]['verdicts'], 'customer', 'staff')} as staff, "
                     f"{_share(b[g]['verdicts'], 'customer', 'ambiguous')} as ambiguous"
                     for g in ("channel", "direction-2mic", "direction-4mic"))
    lines += ["", f"Before, customer-only windows were lost mostly as *staff* ({lost}): a few of the customer's "
              "speech frames, just over the 10 % a window may hold, were judged the staff's. Looked at on these "
              "rooms with each frame judged alone: per room 0-22 % of the customer's speech frames pointed into "
              "the staff's sector (2-mic; 0-13 % 4-mic) and 0-11 % had the staff microphone 3 dB louder than the "
              "kiosk's; they were not the staff's reverberant tail (under 5 % within 1 s of the staff's last "
              "speech), 41-77 % of them within 10 dB of the window's loudest frame, with a weak direction "
              "(steered-response peak 0.17-0.33 for 80 % of them): reflections. The 2-mic calibration was "
              "refused in 8 of these rooms for the same reason (the sides' directions overlapped, all at RT60 >= "
              "0.55 s). A syllable lasts several frames and reflections do "
              "not point the same way from one frame to the next, so judging each frame with its neighbours (levels "
              "summed, steered responses averaged by power) removes most of those; the price is paid on overlap "
              "windows, where a louder customer now outweighs a quieter staff member in a neighbourhood."]
    if tune:
        lines += ["", "## Trade-off and how the defaults were chosen", "",
                  f"Every combination below was run on the tuning rooms (seed {tune['seed']}, {tune['rooms']} rooms) "
                  f"and the test rooms (seed {seed}). Settings are chosen on the tuning rooms only: of those with "
                  f"staff-only windows reaching the model <= {100 * sw.MAX_LEAK:g} % and customer-only windows kept "
                  f">= {100 * sw.MIN_KEPT:g} % (5 points above the target: sets of rooms differ) over all tuning "
                  "rooms and over each half of them (a point that only just meets them is a chance of the rooms), "
                  "the one that drops the most overlap windows (the worse of the 2- and 4-mic arrays for the "
                  "direction gate, whose settings they share). The configuration's thresholds (the two shares, the "
                  "channel margin, the coherence) stay at their defaults; chosen are the new smoothing spans and the "
                  "calibration's sector margin."]
        lines += ["", _choice_line(tune["choice"], d, "Chosen")]
        free = tune["choice_with_thresholds"]
        lines += ["", _choice_line(free, d, "Had the thresholds been chosen the same way too")]
        if free.get("feasible"):
            lines += ["That point on the test rooms: " + _figs_at(res["sweep"]["table"], free["variants"], (
                free["max_staff_share"], free["min_customer_share"])) + ". The shares are common to all gates: no "
                "pair is better for every gate, and the channel margin trades customer-only windows for overlap "
                "windows (tables below), a choice for the privacy owner rather than for tuning."]
        lines += ["", "A first form of this rule, on the pooled tuning rooms only and with the thresholds free, chose "
                  f"shares {EARLIER_SHARES[0]:g} / {EARLIER_SHARES[1]:g}, channel span 1, coherence 0.2 and sector "
                  "margin 25. Customer-only windows kept, tuning rooms: " + _figs_at(
                      tune["table"], EARLIER, EARLIER_SHARES, "customer_kept") + "; test rooms: " + _figs_at(
                      res["sweep"]["table"], EARLIER, EARLIER_SHARES, "customer_kept")
                  + ". A point at the edge of the constraints did not carry over, hence the halves and the "
                  "thresholds left alone."]
        lines += ["", "Each table varies one setting from the defaults (bold); the full grid (all combinations, and "
                  "each half of the tuning rooms) is in `staff_gate_sweep.json`, which the command writes beside "
                  "`staff_gate.json` (1 MB, not committed)."]
        lines += tradeoff(res)
    conf = res.get("confirmation")
    if conf:
        cs = conf["summary"]
        lines += ["", f"## Fresh rooms (seed {conf['seed']})", "",
                  f"{conf['rooms']} more rooms of the same design (measured RT60 {min(conf['rt60_s']):.2f}-"
                  f"{max(conf['rt60_s']):.2f} s), run with the defaults once they were fixed: the test rooms had "
                  "been looked at while the smoothing was developed (the drop reasons above), these had not.", "",
                  "| gate | staff-only reaching the model | customer-only kept | overlap dropped | rooms calibrated |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{g}` | {_pct(cs[g]['staff_leak'])} | {_pct(cs[g]['customer_kept'])} | "
                  f"{_pct(cs[g]['overlap_dropped'])} | {cs[g]['rooms_calibrated']}/{conf['rooms']} |" for g in GATES]
    for band, sb in res["by_rt60"].items():
        n = sum(1 for r in res["rooms"] if (r["rt60_s"] < 0.6) == band.startswith("RT60 <"))
        lines += ["", f"Test rooms with {band} ({n} rooms), defaults:", "",
                  "| gate | staff-only reaching the model | customer-only kept | overlap dropped |",
                  "|---|---|---|---|"]
        lines += [f"| `{g}` | {_pct(sb[g]['staff_leak'])} | {_pct(sb[g]['customer_kept'])} | "
                  f"{_pct(sb[g]['overlap_dropped'])} |" for g in GATES]
    agree = all(s[g]["sweep_agrees"] for g in ("channel", "direction-2mic", "direction-4mic"))
    lines += ["", "CPU per window: `time.process_time` of the gate's decision per 2 s window, streaming (steered "
              "responses of frames shared with the previous window are reused, as in the service), on this machine "
              "while other jobs ran. The sweep judges the same windows with the gate's own functions on "
              "precomputed frames; at the defaults it gave " + ("the same verdict as the gate on every window."
                                                                 if agree else "verdicts that DIFFER from the gate's "
                                                                 "on some windows (see the JSON).")
              + " Not measured: real rooms and microphones (the simulated ones are omnidirectional), talkers moving "
              "or turning, other customers queueing behind, loud non-speech noise sources (music, announcements), "
              "the staff leaning over the counter into the customer's sector, staff speech that is neither alone "
              "nor overlapping by the definitions above.", ""]
    return "\n".join(lines)


def write_json(out: Path, res: dict[str, Any], head: dict[str, Any]) -> None:
    """staff_gate.json (everything but the sweep's full grids) and staff_gate_sweep.json (the grids, compact)."""
    grids = {"test": res["sweep"]["table"], **({"tuning": res["tuning"]["table"]} if "tuning" in res else {})}
    lean = {**res, "sweep": {k: v for k, v in res["sweep"].items() if k != "table"}}
    if "tuning" in res:
        lean["tuning"] = {k: v for k, v in res["tuning"].items() if k != "table"}
    (out / "staff_gate.json").write_text(json.dumps({**head, **lean}, indent=1))
    (out / "staff_gate_sweep.json").write_text(json.dumps({**head, "grids": grids}, separators=(",", ":")))


def cli(args: argparse.Namespace) -> int:
    """``edge-emotion bench staff-gate``: run, print the summary, write JSON (and Markdown, measured.json)."""
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        print("error: the staff-gate benchmark needs pyroomacoustics: pip install -e .[sim]", file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else SPEECH_DIR
    tune_rooms = int(getattr(args, "tune_rooms", TUNE_ROOMS))
    tune_seed = int(getattr(args, "tune_seed", TUNE_SEED))
    confirm_rooms = int(getattr(args, "confirm_rooms", CONFIRM_ROOMS))
    try:
        res = run(args.rooms, args.seed, data, tune_rooms, tune_seed, confirm_rooms)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "edge-emotion bench staff-gate" + f" --rooms {args.rooms} --seed {args.seed}" + (
        f" --markdown {args.markdown}" if args.markdown else "")
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = _machine()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out, res, {"command": command, "date": date, "machine": machine})
    print(json.dumps({g: {k: res["summary"][g][k] for k in FIGS} for g in GATES}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(res, command, machine, date), encoding="utf-8")
        MEASURED.write_text(json.dumps({"command": command, "date": date, "rooms": args.rooms,
                                        "page": "docs/bench/staff_gate.md", "defaults": res["defaults"], "gates": {
                                            g: {k: res["summary"][g][k] for k in FIGS} for g in GATES}},
                                       indent=1) + "\n", encoding="utf-8")
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
