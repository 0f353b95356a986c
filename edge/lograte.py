"""Rate-limited warnings: a flood of bad inbound messages writes a few log lines, not one per message."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` lines per ``period_s`` for each key; the next line that goes out says how many were held back.

    Keys are fixed strings chosen by the callers (one per kind of problem), so the table stays small. Thread-safe.
    """

    def __init__(self, logger: logging.Logger, burst: int = 5, period_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Wrap ``logger``."""
        self.logger, self.burst, self.period_s, self.clock = logger, burst, period_s, clock
        self._lock = threading.Lock()
        self._state: dict[str, list[float]] = {}  # key -> [window start, lines in window, held back]

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether a line for ``key`` may go out now, and how many were held back since the last one that did."""
        now = self.clock()
        with self._lock:
            st = self._state.setdefault(key, [now, 0.0, 0.0])
            if now - st[0] >= self.period_s:
                st[0], st[1] = now, 0.0
            if st[1] >= self.burst:
                st[2] += 1
                return False, 0
            held, st[1], st[2] = int(st[2]), st[1] + 1, 0.0
            return True, held

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log ``msg % args`` at ``level`` unless ``key`` is over its budget (then it is only counted)."""
        ok, held = self.allow(key)
        if ok:
            suffix = f" ({held} similar line(s) held back in the last {self.period_s:g} s)" if held else ""
            self.logger.log(level, msg + suffix, *args, exc_info=exc_info)

    def exception(self, key: str, msg: str, *args: object) -> None:
        """``log`` at ERROR with the current exception's traceback (inside an ``except`` block)."""
        self.log(logging.ERROR, key, msg, *args, exc_info=True)

    def warning(self, key: str, msg: str, *args: object) -> None:
        """``log`` at WARNING."""
        self.log(logging.WARNING, key, msg, *args)
