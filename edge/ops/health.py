"""Health accounting: per-stage latency percentiles, rates and CPU temperature."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

_THERMAL = Path("/sys/class/thermal")


class LatencyStats:
    """Thread-safe rolling latency samples per stage (last ``keep`` each)."""

    def __init__(self, keep: int = 512) -> None:
        """Keep the most recent ``keep`` samples per stage."""
        self._keep = keep
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}

    def add(self, stage: str, seconds: float) -> None:
        """Record one duration for ``stage``."""
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self._keep)).append(seconds * 1000.0)
            self._counts[stage] = self._counts.get(stage, 0) + 1

    def count(self, stage: str) -> int:
        """How many samples ``stage`` has had since start."""
        with self._lock:
            return self._counts.get(stage, 0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """``{stage: {p50, p95, n}}`` in milliseconds over the retained window."""
        with self._lock:
            items = {k: np.asarray(v) for k, v in self._samples.items() if v}
        return {k: {"p50": round(float(np.percentile(v, 50)), 3), "p95": round(float(np.percentile(v, 95)), 3),
                    "n": int(v.size)} for k, v in items.items()}


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Measure over the last ``window_s`` seconds."""
        self._window = window_s
        self._clock = clock
        self._ts: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Count one event now."""
        with self._lock:
            self._ts.append(self._clock())

    def rate(self) -> float:
        """Events per second in the window."""
        now = self._clock()
        with self._lock:
            while self._ts and now - self._ts[0] > self._window:
                self._ts.popleft()
            return round(len(self._ts) / self._window, 3)


def cpu_temperature_c() -> float | None:
    """CPU temperature from the first readable thermal zone (Pi/Jetson/most Linux), else None."""
    try:
        zones = sorted(_THERMAL.glob("thermal_zone*/temp"))
    except OSError:
        return None
    for z in zones:
        try:
            return round(int(z.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None
