"""The staff pause (customer opt-out): the inbound command, parsed strictly, and the gate the workers read."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from edge.events import SchemaError, validate_inbound
from edge.events.inbound import InboundJsonError, decode_json
from edge.lograte import RateLimitedLog
from edge.queues import DropQueue

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # malformed commands: a few lines a minute; each counted in health.drops.errors_pause

PAUSE_MAX_BYTES = 1024  # a pause command is ~40 bytes; anything much larger is not one


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
