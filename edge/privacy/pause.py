"""The staff pause (customer opt-out): the inbound command, parsed strictly, and the gate the workers read."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.events import SchemaError, validate_inbound
from edge.events.inbound import InboundJsonError, decode_json
from edge.lograte import RateLimitedLog
from edge.queues import DropQueue

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # malformed commands: a few lines a minute; each counted in health.drops.errors_pause

PAUSE_MAX_BYTES = 1024  # a pause command is ~40 bytes; anything much larger is not one
PAUSE_FILE = "pause.json"  # in the state folder: the end of a running pause (Unix time), so a restart keeps it


class PauseError(ValueError):
    """An inbound pause command is malformed; the message says why."""


@dataclass(frozen=True)
class PauseCommand:
    """Staff asked to pause (customer opt-out) or resume analysis."""

    action: str  # "pause" | "resume"
    by: str | None = None



def parse_pause(data: bytes) -> PauseCommand:
    """Parse and strictly validate a pause payload (``{"action": "pause"|"resume", "by": ...}``)."""
    if len(data) > PAUSE_MAX_BYTES:
        raise PauseError(f"too large ({len(data)} bytes > {PAUSE_MAX_BYTES})")
    try:
        obj = decode_json(data)
    except InboundJsonError as exc:
        raise PauseError(str(exc)) from None
    try:
        validate_inbound("pause", obj)
    except SchemaError as exc:
        raise PauseError("; ".join(f"{path}: {msg}" for path, msg in exc.errors)[:300]) from None
    return PauseCommand(action=obj["action"], by=obj.get("by"))


class PauseGate:
    """Staff pause (customer opt-out): commands arrive on the network thread, workers read it, the main loop applies.

    With a state file the pause survives a restart (a crash, a watchdog restart, a deploy): its end, as Unix time,
    is written when it starts and removed when it ends; at start a pause still running is taken up again (at most
    ``max_s`` from now, whatever the clock did meanwhile)."""

    def __init__(self, max_s: float, state_file: Path | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        """A pause ends on ``resume`` or ``max_s`` after the last ``pause``."""
        self.max_s = float(max_s)
        self.state_file, self.wall = state_file, wall
        self._event = threading.Event()
        self._commands: DropQueue[PauseCommand] = DropQueue(16)
        self._until = 0.0
        self._resume_in: float | None = None  # a pause taken up from the state file: seconds left, set on update
        left = self._stored_left()
        if left > 0:
            self._event.set()  # before any worker runs: nothing is analysed until the pause is over
            self._resume_in = left
            log.info("staff pause from before the restart still runs: %.0f s left", left)

    def _stored_left(self) -> float:
        if self.state_file is None:
            return 0.0
        try:
            until = float(json.loads(self.state_file.read_text(encoding="utf-8"))["until"])
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: the safe reading is a full pause
            log.warning("pause state %s unreadable (%s); pausing for privacy.pause_max_s", self.state_file, exc)
            return self.max_s
        return min(self.max_s, until - self.wall()) if math.isfinite(until) else self.max_s

    def _store(self, until_wall: float | None) -> None:
        if self.state_file is None:
            return
        try:
            if until_wall is None:
                self.state_file.unlink(missing_ok=True)
                return
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            tmp.write_text(json.dumps({"until": until_wall}), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:  # the pause itself holds; only a restart would end it early
            _warn.warning("pause-state", "could not keep the pause in %s (%s): a restart would end it",
                          self.state_file, exc)

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
        if self._resume_in is not None:
            self._until, self._resume_in = now + self._resume_in, None
            was = False  # reported as a change: the status after the restart says paused
        while (cmd := self._commands.get(timeout=0)) is not None:
            log.info("staff %s%s", cmd.action, " (tagged sender)" if cmd.by else "")  # the tag itself never logged
            if cmd.action == "pause":
                self._event.set()  # at once: the workers stop analysing
                self._until, paused = now + self.max_s, True
                self._store(self.wall() + self.max_s)
            else:
                self._event.clear()
                self._store(None)
        if self._event.is_set() and now >= self._until:
            log.info("pause ended after privacy.pause_max_s=%.0f s", self.max_s)
            self._event.clear()
            self._store(None)
        return paused, self._event.is_set() != was
