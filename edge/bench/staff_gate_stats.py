"""The staff-gate benchmark's figures: pooled shares per gate with room-resampled and Wilson 95 % intervals."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from edge.bench import staff_gate_sweep as sw
from edge.bench.staff_gate_eval import GATES, HOP, WIN

log = logging.getLogger(__name__)

BOOTSTRAP = 2000  # room resamples for the intervals: windows of one room are not independent
FIGS = ("staff_leak", "customer_kept", "overlap_dropped")  # the three figures quoted per gate
OVERLAP = WIN / HOP  # each sample is in this many windows (2 s every 0.25 s: 8): windows are not independent


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


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
    """Pooled share of per-room (k, n) rows; ``ci95`` the wider of the room-resampled and the Wilson interval, the
    latter over the *effective* number of windows (``n / OVERLAP``: disjoint 2 s windows' worth; overlapping
    windows share their samples, and counting each of them as a trial narrowed the interval eightfold)."""
    k, n = sum(r[0] for r in rows), sum(r[1] for r in rows)
    lo, hi = bootstrap(rows)
    wl, wh = wilson_effective(k, n)
    return {"share": k / n if n else None, "k": k, "n": n, "n_effective": round(n / OVERLAP, 1),
            "ci95": [round(min(lo, wl), 4), round(max(hi, wh), 4)], "ci95_rooms": [round(lo, 4), round(hi, 4)],
            "ci95_windows": [round(wl, 4), round(wh, 4)]}


def wilson_effective(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % interval with k and n divided by OVERLAP (a design effect of one per overlapping window)."""
    if n == 0:
        return 0.0, 1.0
    ke, ne = k / OVERLAP, n / OVERLAP
    if ne < 1:
        return 0.0, 1.0
    p = ke / ne
    z = 1.96
    d = 1 + z * z / ne
    c = (p + z * z / (2 * ne)) / d
    h = z * math.sqrt(p * (1 - p) / ne + z * z / (4 * ne * ne)) / d
    return max(0.0, c - h), min(1.0, c + h)


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
