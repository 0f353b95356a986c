"""Keeping staff out of the analysis: staff-zone masking before detection, staff-microphone voice gating."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Zone = Sequence[Sequence[float]]  # one polygon: [[x, y], ...] normalised to 0..1
_EPS = 1e-10


def zone_pixels(zone: Zone, width: int, height: int) -> np.ndarray:
    """A normalised polygon as int32 pixel vertices (N, 2) of a ``width`` x ``height`` frame."""
    pts = np.asarray(zone, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)
    return np.round(pts).astype(np.int32)


def mask_staff(image: np.ndarray, zones: Sequence[Zone]) -> np.ndarray:
    """A copy of ``image`` with every staff polygon filled black; ``image`` itself when there are no zones."""
    if not zones:
        return image
    return blank(image, staff_mask(zones, image.shape[1], image.shape[0]))


def blank(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with the pixels of a boolean ``mask`` (from ``staff_mask``) black; a mask of another size
    is an error (numpy would take an empty mask silently and blank nothing)."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"staff mask {mask.shape} does not fit the frame {image.shape[:2]}")
    out = image.copy()
    out[mask] = 0
    return out


def staff_mask(zones: Sequence[Zone], width: int, height: int) -> np.ndarray:
    """Boolean (height, width) mask of the staff polygons' pixels (the pixels ``mask_staff`` blanks)."""
    out = np.zeros((height, width), np.uint8)
    # A polygon's edge pixels count too (fillPoly includes the boundary), so a zone never leaks a rim. One call
    # per polygon: given several, fillPoly fills by the even-odd rule and leaves where two zones overlap open.
    for z in zones:
        cv2.fillPoly(out, [zone_pixels(z, width, height)], 1)
    return out.astype(bool)


def staff_share(mask: np.ndarray, x0: int, y0: int, side: int) -> float:
    """Share of the square region (x0, y0, side) in pixels, clipped to the frame, that lies in the staff ``mask``."""
    h, w = mask.shape
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if xb <= xa or yb <= ya:
        return 0.0
    return float(mask[ya:yb, xa:xb].mean())


def channel_db(samples: np.ndarray) -> np.ndarray:
    """Mean energy in dB of each channel of a (samples, channels) block."""
    x = np.asarray(samples, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return np.asarray(10.0 * np.log10(np.mean(x * x, axis=0) + _EPS))


def staff_dominates(window: np.ndarray, staff_channel: int, margin_db: float = 3.0) -> bool:
    """True when the staff channel of a (samples, channels) window is ``margin_db`` louder than every other."""
    db = channel_db(window)
    if db.size < 2:
        raise ValueError(f"staff gating needs at least 2 channels, got {db.size}")
    if not 0 <= staff_channel < db.size:
        raise ValueError(f"staff channel {staff_channel} not in a {db.size}-channel window")
    others = np.delete(db, staff_channel)
    return bool(db[staff_channel] - float(others.max()) > margin_db)


def customer_mix(window: np.ndarray, staff_channel: int) -> np.ndarray:
    """Mono float32 mix of every channel except the staff one, for the voice analyzer."""
    x = np.asarray(window, np.float32)
    return np.asarray(np.delete(x, staff_channel, axis=1).mean(axis=1), np.float32)


def gate_voice(window: np.ndarray, staff_channel: int | None, margin_db: float = 3.0) -> np.ndarray | None:
    """Customer audio to analyse from a mono or multi-channel window, or None when staff speech dominates it."""
    x = np.asarray(window, np.float32)
    if x.ndim == 1:
        return x
    if staff_channel is None:
        return np.asarray(x.mean(axis=1), np.float32)
    if staff_dominates(x, staff_channel, margin_db):
        return None
    return customer_mix(x, staff_channel)
