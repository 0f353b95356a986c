"""Remote config may only tighten privacy, under every profile: the kiosk's TOML file is the baseline."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Sequence

import cv2
import numpy as np

from edge.config import KioskConfig
from edge.ops.schedule import open_at

GRID = 400  # raster on which staff-zone coverage is compared (0.25 % of the frame per cell)
SLACK = 0.005  # share of the baseline's staff pixels a redrawn zone may miss (rasterised edges differ by a pixel)


def _mask(zones: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    out = np.zeros((GRID, GRID), np.uint8)
    polys = [np.round(np.asarray(z, np.float64) * (GRID - 1)).astype(np.int32) for z in zones]
    for p in polys:  # one at a time: several in one call fill by the even-odd rule (overlaps left empty)
        cv2.fillPoly(out, [p], 1)
    return out.astype(bool)


def uncovered_share(baseline: Sequence[Sequence[Sequence[float]]], zones: Sequence[Sequence[Sequence[float]]]) -> float:
    """Share of the baseline staff zones' area that ``zones`` leave unmasked (0 when there is no baseline)."""
    base = _mask(baseline)
    total = int(base.sum())
    return 0.0 if total == 0 else float((base & ~_mask(zones)).sum()) / total


def weakened(base: KioskConfig, new: KioskConfig) -> list[str]:
    """One ``key.path: problem`` line for each privacy setting ``new`` loosens against the TOML ``base`` (every
    profile: nothing remote may weaken the file's privacy settings; loosening takes a new file)."""
    why = "a remote change may only tighten the config file's privacy settings"
    out: list[str] = []
    for key in ("face", "voice"):
        if getattr(new.analysis, key) and not getattr(base.analysis, key):
            out.append(f"analysis.{key}: {why}; the file leaves {key} analysis off")
    for key in ("emit_interval_s", "half_life_s"):
        if getattr(new.fusion, key) < getattr(base.fusion, key):
            out.append(f"fusion.{key}: {why}; it may not go below the file's {getattr(base.fusion, key):g} "
                       "(finer-grained states)")
    if new.fusion.visit_end_s > base.fusion.visit_end_s:  # a longer gap joins two customers into one visit_id
        out.append(f"fusion.visit_end_s: {why}; it may not go above the file's {base.fusion.visit_end_s:g} "
                   "(consecutive customers would share one visit)")
    if new.analysis.face_fps > base.analysis.face_fps:
        out.append(f"analysis.face_fps: {why}; it may not go above the file's {base.analysis.face_fps:g} "
                   "(the privacy report states the analysed frame rate)")
    if new.analysis.voice_hop_s < base.analysis.voice_hop_s:
        out.append(f"analysis.voice_hop_s: {why}; it may not go below the file's {base.analysis.voice_hop_s:g} "
                   "(the privacy report states how often speech is analysed)")
    share = uncovered_share(base.privacy.staff_zones, new.privacy.staff_zones)
    if share > SLACK:
        out.append(f"privacy.staff_zones: {why}; these zones leave {share:.0%} of the file's staff zones unmasked")
    bx0, by0, bx1, by1 = base.analysis.customer_zone
    x0, y0, x1, y1 = new.analysis.customer_zone
    if x0 < bx0 or y0 < by0 or x1 > bx1 or y1 > by1:
        out.append(f"analysis.customer_zone: {why}; it must stay inside the file's "
                   f"[{bx0:g}, {by0:g}, {bx1:g}, {by1:g}]")
    if new.analysis.min_face_frac < base.analysis.min_face_frac:
        out.append(f"analysis.min_face_frac: {why}; it may not go below the file's {base.analysis.min_face_frac:g}")
    bp, np_ = base.privacy, new.privacy
    if np_.staff_voice_margin_db > bp.staff_voice_margin_db:
        out.append(f"privacy.staff_voice_margin_db: {why}; it may not go above the file's "
                   f"{bp.staff_voice_margin_db:g} (fewer frames would count as staff speech)")
    if np_.staff_voice_max_share > bp.staff_voice_max_share:
        out.append(f"privacy.staff_voice_max_share: {why}; it may not go above the file's "
                   f"{bp.staff_voice_max_share:g}")
    if np_.customer_voice_min_share < bp.customer_voice_min_share:
        out.append(f"privacy.customer_voice_min_share: {why}; it may not go below the file's "
                   f"{bp.customer_voice_min_share:g}")
    if new.privacy.pause_max_s < base.privacy.pause_max_s:
        out.append(f"privacy.pause_max_s: {why}; it may not go below the file's {base.privacy.pause_max_s:g}")
    opened = _opened_minute(base, new)
    if opened is not None:
        out.append(f"schedule: {why}; opening hours may only shrink, but this analyses at {opened} when the "
                   "file's hours do not")
    return out


# The UTC offsets both time zones take over two whole years, sampled every 30 minutes (transitions fall on whole or
# half hours): for each pair of offsets that occurs, both weekly patterns are compared minute by minute over a week.
# Exact for every instant of those years however the zones' daylight-saving dates differ (a week or two checked
# in winter and summer missed the weeks in March/April and October/November when only one zone had changed).
_YEARS = (dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp(), dt.datetime(2028, 1, 1, tzinfo=dt.UTC).timestamp())
_MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()  # a Monday 00:00 UTC


@functools.lru_cache(maxsize=16)  # a kiosk sees a handful of zone pairs; each costs ~0.1 s to sample
def _offset_pairs(base_tz: str, new_tz: str) -> dict[tuple[int, int], tuple[float, frozenset[int]]]:
    """(base offset, new offset) in minutes -> (the first sampled instant it holds, the half-hour slots of the UTC
    week in which it occurs) over the reference years: a pair that holds only for an hour while the two zones
    change clocks at different moments is checked in that hour only, not over a whole week."""
    zb, zn = zoneinfo.ZoneInfo(base_tz), zoneinfo.ZoneInfo(new_tz)
    first: dict[tuple[int, int], float] = {}
    slots: dict[tuple[int, int], set[int]] = {}
    t = _YEARS[0]
    while t < _YEARS[1]:
        ob = dt.datetime.fromtimestamp(t, zb).utcoffset() or dt.timedelta(0)
        on = dt.datetime.fromtimestamp(t, zn).utcoffset() or dt.timedelta(0)
        key = (int(ob.total_seconds()) // 60, int(on.total_seconds()) // 60)
        first.setdefault(key, t)
        slots.setdefault(key, set()).add(int(t - _MONDAY) // 1800 % (7 * 48))
        t += 1800
    return {k: (first[k], frozenset(slots[k])) for k in first}


def _opened_minute(base: KioskConfig, new: KioskConfig) -> str | None:
    """A moment at which ``new``'s opening hours analyse and ``base``'s do not (as UTC weekday, time and the two
    zones' offsets then), else None."""
    bs, ns = base.schedule, new.schedule
    if ns == bs or not bs.enabled:
        return None
    if not ns.enabled:
        return "any moment outside the file's hours (the change switches opening hours off)"
    for (ob, on), (seen, slots) in _offset_pairs(bs.timezone, ns.timezone).items():
        for minute in range(7 * 24 * 60):  # minutes of a UTC week, in the half hours this pair of offsets holds
            if minute // 30 not in slots:
                continue
            lb, ln = minute + ob, minute + on  # local minutes of that week (may run into the next/previous week)
            if (open_at(ns, (ln // 1440) % 7, ln % 1440) and not open_at(bs, (lb // 1440) % 7, lb % 1440)):
                when = dt.datetime.fromtimestamp(_MONDAY + 60 * minute, dt.UTC).strftime("%a %H:%M UTC")
                since = dt.datetime.fromtimestamp(seen, dt.UTC).strftime("%d %b %Y")
                return (f"{when} while {bs.timezone} is UTC{ob / 60:+g} and {ns.timezone} UTC{on / 60:+g} "
                        f"(as from {since})")
    return None
