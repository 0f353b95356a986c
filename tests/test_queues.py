"""DropQueue and AudioRing: bounded, never blocking, drop/overrun accounting, ring arithmetic."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.queues import AudioRing, DropQueue


def test_dropqueue_drops_oldest_and_counts() -> None:
    q: DropQueue[int] = DropQueue(2)
    assert q.put(1) and q.put(2)
    assert q.put(3) is False  # 1 dropped
    assert q.put(4) is False  # 2 dropped
    assert (q.qsize(), q.dropped, q.maxsize) == (2, 2, 2)
    assert q.get(0) == 3
    assert q.get(0) == 4
    assert q.get(0) is None


def test_dropqueue_put_never_blocks_and_get_times_out() -> None:
    q: DropQueue[int] = DropQueue(1)
    t0 = time.monotonic()
    for i in range(10_000):
        q.put(i)
    assert time.monotonic() - t0 < 1.0
    assert q.dropped == 9_999 and q.get(0) == 9_999
    t0 = time.monotonic()
    assert q.get(timeout=0.1) is None
    assert 0.08 <= time.monotonic() - t0 < 1.0


def test_dropqueue_get_wakes_on_put_from_other_thread() -> None:
    q: DropQueue[str] = DropQueue(2)
    threading.Timer(0.05, q.put, args=("x",)).start()
    assert q.get(timeout=5) == "x"


def test_drain_latest_returns_newest_and_counts_skipped() -> None:
    q: DropQueue[int] = DropQueue(5)
    for i in range(4):
        q.put(i)
    assert q.drain_latest(0) == 3
    assert (q.qsize(), q.skipped, q.dropped) == (0, 3, 0)
    assert q.drain_latest(timeout=0.01) is None


def test_dropqueue_rejects_zero_size() -> None:
    with pytest.raises(ValueError):
        DropQueue(0)


@settings(max_examples=200, deadline=None)
@given(maxsize=st.integers(1, 6), ops=st.lists(st.sampled_from(["put", "get", "drain"]), max_size=60))
def test_dropqueue_accounting_property(maxsize: int, ops: list[str]) -> None:
    q: DropQueue[int] = DropQueue(maxsize)
    puts = gets = 0
    out: list[int] = []
    for op in ops:
        if op == "put":
            q.put(puts)
            puts += 1
        elif op == "get":
            item = q.get(0)
            gets += item is not None
            out += [] if item is None else [item]
        else:
            item = q.drain_latest(0)
            gets += item is not None
            out += [] if item is None else [item]
        assert q.qsize() <= maxsize
    assert q.dropped + q.skipped == puts - gets - q.qsize()
    assert out == sorted(out)  # FIFO order is kept; only old items ever vanish
    assert q.puts == puts


def _ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


def test_ring_wraparound_latest_keeps_newest() -> None:
    ring = AudioRing(seconds=1.0, rate=10)  # 10 samples
    ring.write(_ramp(0, 7), t_end=0.7)
    ring.write(_ramp(7, 7), t_end=1.4)  # wraps: 0..3 overwritten
    x, t = ring.latest(1.0)
    np.testing.assert_array_equal(x, _ramp(4, 10))
    assert t == pytest.approx(1.4)
    x, _ = ring.latest(0.3)
    np.testing.assert_array_equal(x, _ramp(11, 3))
    assert ring.total_samples == 14


def test_ring_latest_shorter_when_not_filled_and_empty() -> None:
    ring = AudioRing(seconds=1.0, rate=10)
    x, t = ring.latest(1.0)
    assert x.size == 0 and t == 0.0
    ring.write(_ramp(0, 3), t_end=5.0)
    x, t = ring.latest(1.0)
    np.testing.assert_array_equal(x, _ramp(0, 3))
    assert t == 5.0


def test_ring_write_larger_than_capacity_keeps_tail() -> None:
    ring = AudioRing(seconds=1.0, rate=10)
    ring.write(_ramp(0, 3), t_end=0.3)
    ring.write(_ramp(3, 25), t_end=2.8)
    x, _ = ring.latest(1.0)
    np.testing.assert_array_equal(x, _ramp(18, 10))


def test_ring_read_new_is_contiguous_with_times() -> None:
    ring = AudioRing(seconds=1.0, rate=10)
    ring.write(_ramp(0, 4), t_end=10.3)  # sample i at 10.0 + 0.1 * i
    x, t = ring.read_new(0.2)
    np.testing.assert_array_equal(x, _ramp(0, 2))
    assert t == pytest.approx(10.1)
    ring.write(_ramp(4, 4), t_end=10.7)
    x, t = ring.read_new()
    np.testing.assert_array_equal(x, _ramp(2, 6))
    assert t == pytest.approx(10.7)
    x, _ = ring.read_new()
    assert x.size == 0
    assert ring.overrun_samples == 0


def test_ring_counts_overrun_only_for_unread_samples() -> None:
    ring = AudioRing(seconds=1.0, rate=10)
    ring.write(_ramp(0, 8), t_end=0.8)
    assert ring.overrun_samples == 0  # no read_new reader yet
    x, _ = ring.read_new(0.5)  # reads 0..4; 5..7 unread
    np.testing.assert_array_equal(x, _ramp(0, 5))
    ring.write(_ramp(8, 9), t_end=1.7)  # 17 written; oldest kept = 7; 5 and 6 lost unread
    assert ring.overrun_samples == 2
    x, t = ring.read_new()
    np.testing.assert_array_equal(x, _ramp(7, 10))
    assert t == pytest.approx(1.7)


def test_ring_wait_new_and_threaded_writer() -> None:
    ring = AudioRing(seconds=2.0, rate=1000)
    assert ring.wait_new(0.01) is False
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            ring.write(_ramp(i * 10, 10), t_end=float(i))
            i += 1

    th = threading.Thread(target=writer)
    th.start()
    got: list[np.ndarray] = []
    while th.is_alive() or ring.wait_new(0):
        if ring.wait_new(0.05):
            got.append(ring.read_new()[0])
    th.join()
    got.append(ring.read_new()[0])
    allx = np.concatenate(got)
    assert allx.size + ring.overrun_samples == 2000
    assert np.all(np.diff(allx) > 0)  # never out of order, never duplicated
