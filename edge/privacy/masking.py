"""Privacy mechanisms: staff-zone masking before detection, staff-voice gating, and the staff pause command."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.events import SchemaError, validate_inbound
from edge.lograte import RateLimitedLog
from edge.queues import DropQueue

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # malformed commands: a few lines a minute; each counted in health.drops.errors_pause

Zone = Sequence[Sequence[float]]  # one polygon: [[x, y], ...] normalised to 0..1
PAUSE_MAX_BYTES = 1024  # a pause command is ~40 bytes; anything much larger is not one
_EPS = 1e-10


def zone_pixels(zone: Zone, width: int, height: int) -> np.ndarray:
    """A normalised polygon as int32 pixel vertices (N, 2) of a ``width`` x ``height`` frame."""
    pts = np.asarray(zone, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)
    return np.round(pts).astype(np.int32)


def mask_staff(image: np.ndarray, zones: Sequence[Zone]) -> np.ndarray:
    """A copy of ``image`` with every staff polygon filled black; ``image`` itself when there are no zones."""
    if not zones:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    polys = [zone_pixels(z, w, h) for z in zones]
    # A polygon's edge pixels are blanked too (fillPoly includes the boundary), so a zone never leaks a rim.
    cv2.fillPoly(out, polys, (0,) * (out.shape[2] if out.ndim == 3 else 1))
    return out


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


class PauseError(ValueError):
    """An inbound pause command is malformed; the message says why."""


@dataclass(frozen=True)
class PauseCommand:
    """Staff asked to pause (customer opt-out) or resume analysis."""

    action: str  # "pause" | "resume"
    by: str | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_pause(data: bytes) -> PauseCommand:
    """Parse and strictly validate a pause payload (``{"action": "pause"|"resume", "by": ...}``)."""
    if len(data) > PAUSE_MAX_BYTES:
        raise PauseError(f"too large ({len(data)} bytes > {PAUSE_MAX_BYTES})")
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise PauseError("not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise PauseError(f"not JSON: {exc}") from None
    try:
        validate_inbound("pause", obj)
    except SchemaError as exc:
        raise PauseError("; ".join(f"{path}: {msg}" for path, msg in exc.errors)[:300]) from None
    return PauseCommand(action=obj["action"], by=obj.get("by"))


class PauseGate:
    """Staff pause (customer opt-out): commands arrive on the network thread, workers read it, the main loop applies."""

    def __init__(self, max_s: float) -> None:
        """A pause ends on ``resume`` or ``max_s`` after the last ``pause``."""
        self.max_s = float(max_s)
        self._event = threading.Event()
        self._commands: DropQueue[PauseCommand] = DropQueue(16)
        self._until = 0.0

    def is_set(self) -> bool:
        """Whether analysis is paused (thread-safe; the workers check it for every frame and window)."""
        return self._event.is_set()

    def receive(self, payload: bytes) -> bool:
        """Queue a valid command (any thread); a malformed one is logged and ignored. False if malformed."""
        try:
            cmd = parse_pause(payload)
        except PauseError as exc:
            _warn.warning("pause", "ignored malformed pause command: %s", exc)
            return False
        self._commands.put(cmd)
        return True

    def update(self, now: float) -> tuple[bool, bool]:
        """Apply queued commands and the time limit (main loop); (a pause command came, the state changed)."""
        was, paused = self._event.is_set(), False
        while (cmd := self._commands.get(timeout=0)) is not None:
            log.info("staff %s (by %r)", cmd.action, cmd.by)
            if cmd.action == "pause":
                self._event.set()  # at once: the workers stop analysing
                self._until, paused = now + self.max_s, True
            else:
                self._event.clear()
        if self._event.is_set() and now >= self._until:
            log.info("pause ended after privacy.pause_max_s=%.0f s", self.max_s)
            self._event.clear()
        return paused, self._event.is_set() != was
