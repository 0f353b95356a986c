"""The staff-gate benchmark's sweep: every threshold and variant of each gate on the same simulated windows.

Per room and gate, each labelled window's speech frames are judged under every variant (channel: margin and
smoothing span; direction: smoothing span, coherence threshold and calibration sector margin, calibrated per
variant) with the gate's own functions (``channel_flags``, ``direction_flags``), keeping the staff and customer frame
shares; the window rule's two shares are then applied to all of them at once. The operating point is chosen on
*tuning* rooms (another seed) by ``choose`` and reported on the test rooms. Pure numpy on a simulated ``Room``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.bench.rooms import FOUR_MIC, RATE, TWO_MIC, Room
from edge.privacy.gate_config import in_sector
from edge.voicegate.calibrate import CalibrationError, propose
from edge.voicegate.doa import FRAME, DirectionEstimator, frame_power, smooth
from edge.voicegate.gate import ac_power, channel_flags, speech_frames

STAFF_SHARES = (0.05, 0.1, 0.15, 0.2, 0.25)  # privacy.staff_voice_max_share
CUSTOMER_SHARES = (0.3, 0.4, 0.5, 0.6)  # privacy.customer_voice_min_share
CHANNEL_MARGINS = (2.0, 3.0, 4.0, 5.0)  # privacy.staff_voice_margin_db
SPANS = (0, 1, 2, 3)  # CHANNEL_SPAN, DIRECTION_SPAN
COHERENCES = (0.1, 0.15, 0.2)  # privacy.direction.min_coherence
SECTOR_MARGINS = (5.0, 15.0, 25.0)  # calibrate-direction --margin
MAX_LEAK = 0.01  # the operating point (``choose``): on the tuning rooms, staff-only windows reaching the model at
MIN_KEPT = 0.95  # most this, customer-only windows kept at least this (5 points above the target: rooms differ),
# and of those the most overlap windows dropped (the staff's voice is what the gate is for).
EQUAL = 0.01  # overlap dropped within this of the best counts as as good (48 rooms cannot tell less apart)
CONFIG_PARAMS = ("margin_db", "min_coherence")  # variant settings that are configuration thresholds, like the shares
KINDS = ("staff", "customer", "overlap")
FALLBACK_DEG = 50.0  # a refused calibration: the true directions +- this (counted in "rooms calibrated")


def key(**params: float) -> str:
    """A variant's name, e.g. ``margin_db=3,span=2``."""
    return ",".join(f"{k}={v:g}" for k, v in params.items())


def channel_keys() -> list[str]:
    return [key(margin_db=m, span=s) for m, s in itertools.product(CHANNEL_MARGINS, SPANS)]


def direction_keys() -> list[str]:
    return [key(span=s, min_coherence=c, sector_margin_deg=m) for s, c, m in
            itertools.product(SPANS, COHERENCES, SECTOR_MARGINS)]


@dataclass
class GateWindows:
    """One gate's labelled windows in one room: kind, VAD verdict on the gate's audio, frame shares per variant."""

    kind: list[str] = field(default_factory=list)
    vad_ok: list[bool] = field(default_factory=list)
    shares: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)  # variant -> (staff, cust, n)
    calibrated: dict[str, bool] = field(default_factory=dict)  # direction variants: calibration accepted

    def add(self, variant: str, staff: np.ndarray, customer: np.ndarray) -> None:
        n = int(staff.size)
        self.shares.setdefault(variant, []).append(
            (float(staff.mean()) if n else 0.0, float(customer.mean()) if n else 0.0, n))


def stream_frames(audio: np.ndarray) -> np.ndarray:
    """A (samples, channels) stream cut on the FRAME grid: (frames, FRAME, channels)."""
    x = np.asarray(audio, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    n = x.shape[0] // FRAME
    return x[: n * FRAME].reshape(n, FRAME, x.shape[1])


def window_ids(audio: np.ndarray, end: int, win: int) -> np.ndarray:
    """Stream frame indices of the speech frames the gate sees in the window ending at ``end``."""
    _, active, first = speech_frames(audio[end - win:end], end)
    return int(first or 0) + np.flatnonzero(active)


def calibrated_sectors(room: Room, array: str, est: DirectionEstimator, margin: float, span: int,
                       coherence: float) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """(staff, customer) sectors from the room's calibration recordings; the true directions +-50 when refused."""
    cal = room.calibration[array]
    try:
        s, c, _ = propose(cal["staff"], cal["customer"], est, margin, span, coherence)
        return s, c, True
    except CalibrationError:
        t = room.truth_deg[array]
        if est.linear:
            return ((max(0.0, t["staff"] - FALLBACK_DEG), min(180.0, t["staff"] + FALLBACK_DEG)),
                    (max(0.0, t["customer"] - FALLBACK_DEG), min(180.0, t["customer"] + FALLBACK_DEG)), False)
        return (((t["staff"] - FALLBACK_DEG) % 360, (t["staff"] + FALLBACK_DEG) % 360),
                ((t["customer"] - FALLBACK_DEG) % 360, (t["customer"] + FALLBACK_DEG) % 360), False)


def sweep_channel(audio: np.ndarray, labelled: list[tuple[int, str, bool]], win: int) -> GateWindows:
    """Channel gate (staff microphone = channel 0) variants over the labelled windows (end, kind, VAD ok)."""
    power = ac_power(stream_frames(audio))  # as the shipped channel gate measures levels (each frame's DC removed)
    out = GateWindows()
    for end, kind, ok in labelled:
        out.kind.append(kind)
        out.vad_ok.append(ok)
        ids = window_ids(audio, end, win)
        for span in SPANS:
            for margin in CHANNEL_MARGINS:
                out.add(key(margin_db=margin, span=span), *channel_flags(power[ids], ids, 0, margin, span))
    return out


def sweep_direction(room: Room, array: str, labelled: list[tuple[int, str, bool]], win: int) -> GateWindows:
    """Direction gate variants (each calibrated in this room) over the labelled windows (end, kind, VAD ok)."""
    est = DirectionEstimator(TWO_MIC if array == "two" else FOUR_MIC, RATE)
    audio = room.mics[array]
    frames = stream_frames(audio)
    resp, power = est.responses(frames), frame_power(frames).mean(axis=1)
    out = GateWindows()
    grids: dict[tuple[int, float, float], tuple[np.ndarray, np.ndarray]] = {}
    for span, coh, margin in itertools.product(SPANS, COHERENCES, SECTOR_MARGINS):
        s, c, ok = calibrated_sectors(room, array, est, margin, span, coh)
        out.calibrated[key(span=span, min_coherence=coh, sector_margin_deg=margin)] = ok
        grids[(span, coh, margin)] = (np.array([in_sector(a, s) for a in est.grid]),
                                      np.array([in_sector(a, c) for a in est.grid]))
    for end, kind, ok in labelled:
        out.kind.append(kind)
        out.vad_ok.append(ok)
        ids = window_ids(audio, end, win)
        for span in SPANS:
            az, peak = est.peaks(smooth(resp[ids], power[ids], ids, span))
            idx = np.searchsorted(est.grid, az)
            for coh, margin in itertools.product(COHERENCES, SECTOR_MARGINS):
                sg, cg = grids[(span, coh, margin)]
                clear = peak >= coh
                out.add(key(span=span, min_coherence=coh, sector_margin_deg=margin), clear & sg[idx], clear & cg[idx])
    return out


def verdicts(shares: np.ndarray, max_staff: float, min_customer: float) -> np.ndarray:
    """The gate's rule (``judge``) on (staff share, customer share, n) rows: silent, staff, ambiguous, customer."""
    s, c, n = shares[:, 0], shares[:, 1], shares[:, 2]
    return np.where(n == 0, "silent", np.where(s > max_staff, "staff", np.where(c < min_customer, "ambiguous",
                                                                               "customer")))


def counts(rooms: list[GateWindows], variant: str, max_staff: float, min_customer: float) -> dict[str, Any]:
    """Per-room (k, n) of the three figures and the verdicts per window kind, for one variant and share pair."""
    per_room: dict[str, list[tuple[int, int]]] = {"staff_leak": [], "customer_kept": [], "overlap_dropped": []}
    reasons: dict[str, dict[str, int]] = {k: {} for k in KINDS}
    for r in rooms:
        kind = np.array(r.kind)
        v = verdicts(np.array(r.shares[variant], np.float64).reshape(-1, 3), max_staff, min_customer)
        passed = v == "customer"  # the gate drops windows without speech frames (silent) since 2026-12-04
        ok = np.array(r.vad_ok, bool)
        for k in KINDS:
            for name, cnt in zip(*np.unique(v[kind == k], return_counts=True), strict=True):
                reasons[k][str(name)] = reasons[k].get(str(name), 0) + int(cnt)
        st, cu, ov = kind == "staff", kind == "customer", kind == "overlap"
        per_room["staff_leak"].append((int(np.sum(passed & ok & st)), int(st.sum())))
        per_room["customer_kept"].append((int(np.sum(passed & cu)), int(cu.sum())))
        per_room["overlap_dropped"].append((int(np.sum(~passed & ov)), int(ov.sum())))
    return {"per_room": per_room, "reasons": reasons}


def shares_of(c: dict[str, Any], rooms: slice = slice(None)) -> dict[str, float | None]:
    """The pooled shares of ``counts``' three figures (over the rooms in ``rooms``)."""
    out: dict[str, float | None] = {}
    for name, rows in c["per_room"].items():
        k, n = sum(r[0] for r in rows[rooms]), sum(r[1] for r in rows[rooms])
        out[name] = round(k / n, 5) if n else None
    return out


def table(rooms: dict[str, list[GateWindows]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every gate x variant x share pair -> pooled figures and those of each half of the rooms:
    ``{gate: {"variant|ms|mc": {figure: share, "halves": [{figure: share}, {figure: share}]}}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for gate, rs in rooms.items():
        variants = list(rs[0].shares) if rs else []
        half = len(rs) // 2
        out[gate] = {}
        for v in variants:
            for ms, mc in itertools.product(STAFF_SHARES, CUSTOMER_SHARES):
                c = counts(rs, v, ms, mc)
                out[gate][f"{v}|{ms:g}|{mc:g}"] = {**shares_of(c), "halves": [
                    shares_of(c, slice(None, half)), shares_of(c, slice(half, None))]}
    return out


def _feasible(fig: dict[str, Any]) -> bool:
    """Within MAX_LEAK and MIN_KEPT over all the rooms and over each half of them."""
    return all((f["staff_leak"] or 0.0) <= MAX_LEAK and (f["customer_kept"] or 0.0) >= MIN_KEPT
               for f in [fig, *fig.get("halves", [])])


def params(v: str) -> dict[str, float]:
    return {k: float(x) for k, x in (p.split("=") for p in v.split(","))}


def choose(tab: dict[str, dict[str, dict[str, Any]]], default: dict[str, str], default_shares: tuple[float, float],
           tune_config: bool = False) -> dict[str, Any]:
    """The operating point on tuning figures.

    Per gate family (channel; direction, one variant for the 2- and 4-mic arrays) the variant that drops the most
    overlap windows (the worse array's for direction; then more customer-only windows kept) among those within
    MAX_LEAK and MIN_KEPT over all the tuning rooms and over each half of them (a point that only just meets them
    pooled is a chance of the rooms); the default when it drops within EQUAL of the most. Without ``tune_config``
    the configuration's thresholds (CONFIG_PARAMS and the shares) stay at their defaults and only the smoothing spans
    and the calibration margin are chosen; with it, the shares (common to all gates) are chosen too: the pair whose
    worse family drops the most (the default pair when within EQUAL).
    """
    families = {"channel": ["channel"], "direction": ["direction-2mic", "direction-4mic"]}
    pairs = list(itertools.product(STAFF_SHARES, CUSTOMER_SHARES)) if tune_config else [default_shares]
    scored: list[tuple[Any, ...]] = []
    for ms, mc in pairs:
        picks, worst = {}, 1.0
        for fam, gates in families.items():
            fixed = {k: v for k, v in params(default[fam]).items() if k in CONFIG_PARAMS and not tune_config}
            cands = []
            for v in sorted({k.split("|")[0] for k in tab[gates[0]]}):
                if any(params(v)[k] != x for k, x in fixed.items()):
                    continue
                figs = [tab[g][f"{v}|{ms:g}|{mc:g}"] for g in gates]
                if all(_feasible(f) for f in figs):
                    cands.append((round(min(float(f["overlap_dropped"] or 0.0) for f in figs), 4),
                                  round(min(float(f["customer_kept"] or 0.0) for f in figs), 4), v == default[fam], v))
            if not cands:
                break
            most = max(c[0] for c in cands)
            top = max(cands, key=lambda c: (c[0] >= most - EQUAL and c[2], c[0], c[1]))
            picks[fam] = top[3]
            worst = min(worst, top[0])
        else:
            scored.append((worst, (ms, mc) == default_shares, ms, mc, picks))
    if not scored:
        return {"feasible": False}
    most = max(c[0] for c in scored)
    best = max(scored, key=lambda c: (c[0] >= most - EQUAL and c[1], c[0]))
    return {"feasible": True, "max_staff_share": best[2], "min_customer_share": best[3], "variants": best[4],
            "worst_overlap_dropped": best[0]}
