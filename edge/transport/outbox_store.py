"""The outbox's store contract: the queued row, limits, drop counters and the drop rule both stores share."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Dropped first: the lowest priority, then the oldest.
PRIORITY = {"emotion": 0, "health": 0, "visit": 1, "configstate": 1, "current": 1, "cue": 1, "alert": 2}


STEP_S = 5.0  # a change of the wall clock against the steady one this large between two rows is a step, not a slew


def steady() -> float:
    """Seconds on a clock that never steps and counts a suspend (CLOCK_BOOTTIME where there is one)."""
    boot = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boot) if boot is not None else time.monotonic()


@dataclass(frozen=True)
class Row:
    """One queued message."""

    seq: int
    kind: str
    topic: str
    payload: str
    retain: bool


class _Store:
    """Limits, drop counters and the drop rule shared by both stores; subclasses keep the rows."""

    def __init__(self, max_rows: int, max_bytes: int, max_age_s: float, clock: Callable[[], float]) -> None:
        self.max_rows, self.max_bytes, self.max_age_s, self.clock = max_rows, max_bytes, max_age_s, clock
        self.rows = 0
        self.nbytes = 0
        self.drops = dict.fromkeys(PRIORITY, 0)
        self._expired_at = -1.0
        self._warned_at = -1e18
        self.steady: Callable[[], float] = steady
        self.offset: float | None = None  # wall minus steady clock at the last row; None before the first
        self.since_seq = 1  # rows numbered from here on were queued by this process (set by the stores)

    def _follow_clock(self, now: float) -> None:
        """Keep queued rows' ages when the wall clock steps (a Pi without a battery clock boots with the last
        shutdown's time and jumps at NTP sync): this process's rows were stamped by the clock before the step, so
        they move with it, and the age limit drops none of them early (forward step) nor keeps them late (backward
        step). Rows of an earlier process keep their times: their clock was not this one's."""
        offset = now - self.steady()
        if self.offset is not None and abs(offset - self.offset) >= STEP_S:
            step = offset - self.offset
            self._expired_at += step
            self._shift(step)  # once per step: one UPDATE of this process's rows at most
            log.info("wall clock stepped by %+.0f s: this process's queued rows keep their ages", step)
        self.offset = offset

    def add(self, kind: str, topic: str, payload: str, retain: bool) -> int:
        """Append one message; drop expired rows, then the lowest-priority oldest while over the limits."""
        now = self.clock()
        self._follow_clock(now)
        size = len(payload.encode())
        seq = self._insert(kind, PRIORITY.get(kind, 0), topic, payload, retain, size, now)
        self.rows += 1
        self.nbytes += size
        if now - self._expired_at >= 1.0:
            self._expired_at = now
            for k, n in self._expire(now - self.max_age_s):
                self._dropped(k, n, "older than mqtt.outbox_max_age_s")
        while self.rows > self.max_rows or self.nbytes > self.max_bytes:
            k, n = self._drop_one()
            self._dropped(k, n, "full")
        return seq

    def _dropped(self, kind: str, size: int, why: str) -> None:
        self.rows -= 1
        self.nbytes -= size
        self.drops[kind] = self.drops.get(kind, 0) + 1
        if time.monotonic() - self._warned_at >= 60.0:  # at most one warning a minute; counts are in health
            self._warned_at = time.monotonic()
            log.warning("outbox %s: dropped a queued %s event (%d rows, %d bytes queued; drops so far %s)",
                        why, kind, self.rows, self.nbytes, self.drops)

    def stats(self) -> dict[str, int]:
        """Rows and bytes queued, and rows dropped per kind."""
        return {"rows": self.rows, "bytes": self.nbytes, **self.drops}

    # implemented by the stores
    def discard(self, seq: int, size: int, why: str) -> None:
        """Delete one row that can never be sent, counted as ``corrupt`` in the drops."""
        raise NotImplementedError

    def _insert(self, kind: str, prio: int, topic: str, payload: str, retain: bool, size: int, now: float) -> int:
        raise NotImplementedError

    def _expire(self, cutoff: float) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _shift(self, step: float) -> None:
        """Move the creation time of every row this process queued by ``step`` seconds."""
        raise NotImplementedError

    def _drop_one(self) -> tuple[str, int]:
        raise NotImplementedError

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows with a sequence number above ``seq``, oldest first."""
        raise NotImplementedError

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove acknowledged rows (missing ones are ignored)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the store."""
