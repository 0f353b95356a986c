"""Bounded, never-blocking hand-offs between capture threads and analysis.

``DropQueue`` is the frame queue (Frigate-style: tiny, drops the oldest and counts it); ``AudioRing``
is a fixed-size ring of recent audio that the microphone callback overwrites and analysers read.
Producers never block on either: when a consumer falls behind, old data is discarded and counted.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class DropQueue(Generic[T]):
    """Bounded FIFO whose ``put`` never blocks: when full it drops the oldest item and counts it."""

    def __init__(self, maxsize: int) -> None:
        """Create an empty queue holding at most ``maxsize`` (>= 1) items."""
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self.puts = 0  # items offered
        self.dropped = 0  # items discarded unread because the queue was full (loss)
        self.skipped = 0  # items discarded by drain_latest (analysis slower than capture: by design)

    @property
    def maxsize(self) -> int:
        """Capacity of the queue."""
        return self._maxsize

    def put(self, item: T) -> bool:
        """Append ``item`` without blocking; return False if the oldest item had to be dropped for it."""
        with self._cond:
            self.puts += 1
            ok = True
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
                ok = False
            self._items.append(item)
            self._cond.notify_all()
            return ok

    def offer(self, item: T, timeout: float = 0.0) -> bool:
        """Append ``item`` if there is room within ``timeout`` seconds, dropping nothing; False if still full (for
        a producer with its own back-pressure, e.g. a broker that keeps what is not acknowledged)."""
        with self._cond:
            self.puts += 1
            if not self._cond.wait_for(lambda: len(self._items) < self._maxsize, timeout):
                self.puts -= 1  # not taken: offered again by the caller
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to ``timeout`` seconds (None = forever); None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            self._cond.notify_all()  # room for a waiting offer
            return item

    def drain_latest(self, timeout: float | None = None) -> T | None:
        """Newest item, discarding older ones (counted in ``skipped``); None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.pop()
            self.skipped += len(self._items)
            self._items.clear()
            return item

    def qsize(self) -> int:
        """Number of items waiting."""
        with self._cond:
            return len(self._items)


class AudioRing:
    """Fixed-size float32 ring of the last ``seconds * rate`` samples (mono, or ``channels`` kept apart), timed.

    With ``channels`` > 1 every write and read is (samples, channels): the channels stay apart until the
    staff-voice gate has decided on a window.

    ``write`` never blocks and overwrites the oldest audio. ``overrun_samples`` counts samples that were
    overwritten before ``read_new`` returned them (only once a ``read_new`` reader exists; a consumer that
    only uses ``latest`` causes no overrun count). Sample times come from the ``t_end`` of the write that
    brought them, minus their offset from that write's last sample.
    """

    def __init__(self, seconds: float, rate: int = 16000, channels: int = 1) -> None:
        """Allocate a ring of ``round(seconds * rate)`` samples of ``channels`` channels."""
        cap = int(round(seconds * rate))
        if cap < 1 or rate < 1 or channels < 1:
            raise ValueError(f"ring needs a positive size, got seconds={seconds} rate={rate} channels={channels}")
        self.rate = rate
        self.capacity = cap
        self.channels = channels
        self._buf = np.zeros((cap, channels), dtype=np.float32)
        self._total = 0  # samples ever written; absolute index of the next sample
        self._read_pos: int | None = None  # absolute index of the next sample for read_new
        self._ends: list[int] = []  # absolute end index (exclusive) of each retained write
        self._times: list[float] = []  # t_end of each retained write
        self._cond = threading.Condition()
        self.overrun_samples = 0

    @property
    def total_samples(self) -> int:
        """Samples written since creation."""
        with self._cond:
            return self._total

    def write(self, samples: np.ndarray, t_end: float) -> None:
        """Append samples (mono, or (n, channels)) whose last was captured at ``t_end``; overwrite the oldest."""
        x = np.asarray(samples, dtype=np.float32)
        if self.channels == 1:
            x = x.reshape(-1, 1)
        elif x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"audio block of shape {x.shape} for a {self.channels}-channel ring")
        n = x.shape[0]
        if n == 0:
            return
        with self._cond:
            keep = x[-self.capacity:]
            k = keep.shape[0]
            start = (self._total + n - k) % self.capacity
            first = min(k, self.capacity - start)
            self._buf[start:start + first] = keep[:first]
            self._buf[:k - first] = keep[first:]
            self._total += n
            self._ends.append(self._total)
            self._times.append(float(t_end))
            oldest = self._total - min(self._total, self.capacity)
            k = bisect.bisect_right(self._ends, oldest)
            if k:
                del self._ends[:k], self._times[:k]
            if self._read_pos is not None and self._read_pos < oldest:
                self.overrun_samples += oldest - self._read_pos
                self._read_pos = oldest
            self._cond.notify_all()

    def _time_of(self, index: int) -> float:
        """Capture time of the sample at absolute ``index`` (must be retained)."""
        w = bisect.bisect_right(self._ends, index)
        return self._times[w] - (self._ends[w] - 1 - index) / self.rate

    def _copy(self, start: int, stop: int) -> np.ndarray:
        """Copy retained absolute sample range [start, stop) out of the ring."""
        idx = np.arange(start, stop) % self.capacity
        out = self._buf[idx]  # fancy indexing copies
        return out[:, 0].copy() if self.channels == 1 else out

    def _empty(self) -> np.ndarray:
        return np.zeros(0 if self.channels == 1 else (0, self.channels), dtype=np.float32)

    def latest(self, seconds: float) -> tuple[np.ndarray, float]:
        """The most recent ``seconds`` of audio (shorter if not available yet) and its last sample's time."""
        with self._cond:
            if self._total == 0:
                return self._empty(), 0.0
            n = min(int(round(seconds * self.rate)), self.capacity, self._total)
            return self._copy(self._total - n, self._total), self._times[-1]

    def read_new(self, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
        """Samples not yet returned by read_new (oldest first, at most ``max_seconds``) and their last time.

        The first call starts at the oldest retained sample. With nothing new, returns an empty array and
        the time of the last sample previously returned (0.0 if none).
        """
        with self._cond:
            oldest = self._total - min(self._total, self.capacity)
            start = oldest if self._read_pos is None else max(self._read_pos, oldest)
            stop = self._total
            if max_seconds is not None:
                stop = min(stop, start + max(0, int(round(max_seconds * self.rate))))
            self._read_pos = stop
            if stop <= oldest:
                return self._empty(), 0.0
            return self._copy(start, stop), self._time_of(stop - 1)

    def wait_new(self, timeout: float | None = None) -> bool:
        """Wait until read_new has something to return; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._read_pos is None and self._total > 0
                                       or self._read_pos is not None and self._read_pos < self._total, timeout)
