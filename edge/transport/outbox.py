"""Store-and-forward outbox: events wait (SQLite WAL in the state folder, else memory) until the broker acks them.

Drop rule when full (rows, bytes) or too old: the oldest row of the lowest priority goes first, i.e. oldest
``emotion``/``health`` rows, then ``visit``, then ``alert``; each drop is counted per kind (``health.drops``).
Only validated JSON payloads ever go in; ``status`` never does (it is retained and re-sent on every connect).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.transport.outbox_backends import DB_NAME, MemoryStore, SqliteStore, seq_floor
from edge.transport.outbox_store import Row, _Store

__all__ = ["DB_NAME", "MemoryStore", "Outbox", "Row", "SqliteStore"]  # the stores live in outbox_backends

log = logging.getLogger(__name__)


class Outbox:
    """Thread-safe facade over a store; a failing database is replaced by memory, counted, shown and retried.

    When the database fails (disk full, I/O error), new events are kept in memory, the rows already in the file
    wait there (``stranded``; they are sent once the database works again, or after a restart), the cause is in
    ``problem`` (the service lists it in ``status.degraded``), and every ``RETRY_S`` the file is tried again.
    """

    RETRY_S = 10.0

    def __init__(self, store: _Store, clock: Callable[[], float] = time.monotonic) -> None:
        """Wrap ``store``."""
        self.store = store
        self.errors = 0
        self.stranded = 0  # rows left in the failed database file
        self.problem: str | None = None  # why the database is not in use, while it is not
        self.generation = 0  # bumped when the store changes: the sender starts again from the oldest row
        self.clock = clock
        self._failed_path: Path | None = None
        self._retry_at = 0.0
        self._newest_retained: dict[str, int] = {}  # topic -> sequence number of its newest retained message
        self._lock = threading.Lock()
        if isinstance(store, MemoryStore) and store.retry is not None:  # the file failed to open at start
            self._failed_path, why, self.stranded = store.retry
            self.problem = f"outbox.db failed: {why}"[:120]
            self._retry_at = self.clock() + self.RETRY_S

    @property
    def persistent(self) -> bool:
        """Whether rows survive a restart."""
        return isinstance(self.store, SqliteStore)

    def _failed(self, exc: sqlite3.Error) -> None:
        old = self.store
        assert isinstance(old, SqliteStore)
        self.errors += 1
        self.stranded, self._failed_path = max(0, old.rows), old.path
        self.problem = f"outbox.db failed: {exc}"[:120]
        log.error("outbox database %s failed (%s); %d queued event(s) wait in the file, new events are kept in "
                  "memory; retrying every %.0f s", old.path, exc, self.stranded, self.RETRY_S)
        try:
            first = old.last_seq() + 1
        except sqlite3.Error:
            first = seq_floor()  # above any sequence number the file can have reached
        self.store = MemoryStore(old.max_rows, old.max_bytes, old.max_age_s, old.clock, first)
        self.store.drops = dict(old.drops)
        self.store.steady, self.store.offset, self.store.since_seq = old.steady, old.offset, old.since_seq
        self.generation += 1
        self._retry_at = self.clock() + self.RETRY_S
        with contextlib.suppress(sqlite3.Error):
            old.close()

    def _resume(self) -> None:
        """Every RETRY_S after a failure: reopen the database and move the rows kept in memory back into it."""
        mem, path = self.store, self._failed_path
        if path is None or not isinstance(mem, MemoryStore) or self.clock() < self._retry_at:
            return
        self._retry_at = self.clock() + self.RETRY_S
        try:
            store = SqliteStore(path, mem.max_rows, mem.max_bytes, mem.max_age_s, mem.clock)
        except sqlite3.Error as exc:
            log.debug("outbox database %s still unusable: %s", path, exc)
            return
        try:
            store.since_seq = mem.since_seq
            # a retained state (current, configstate) queued in the file before the failure must not be sent after
            # the newer one that went out from memory: it would become the broker's retained copy
            stale = store.adopt(mem.queued(), self._newest_retained, mem.file_shift)
        except sqlite3.Error as exc:
            log.debug("outbox database %s still unusable: %s", path, exc)
            with contextlib.suppress(sqlite3.Error):
                store.close()
            return
        store.drops = dict(mem.drops)
        store.steady, store.offset = mem.steady, mem.offset  # (since_seq: set before adopt)
        self.store, self.stranded, self.problem, self._failed_path = store, 0, None, None
        self.generation += 1
        log.warning("outbox database %s works again; %d queued event(s) in it (%d superseded retained ones left out)",
                    path, store.rows, stale)

    def add(self, kind: str, topic: str, payload: str, retain: bool) -> int:
        """Queue one message; returns its sequence number."""
        with self._lock:
            self._resume()
            try:
                seq = self.store.add(kind, topic, payload, retain)
            except sqlite3.Error as exc:
                self._failed(exc)
                seq = self.store.add(kind, topic, payload, retain)
            if retain:
                self._newest_retained[topic] = seq  # one per retained topic of this kiosk: a handful
            return seq

    def after(self, seq: int, limit: int) -> list[Row]:
        """Queued rows after ``seq``, oldest first."""
        with self._lock:
            try:
                return self.store.after(seq, limit)
            except sqlite3.Error as exc:
                self._failed(exc)
                return []

    def delete(self, seqs: list[int]) -> None:
        """Forget acknowledged rows."""
        with self._lock:
            try:
                self.store.delete(seqs)
            except sqlite3.Error as exc:
                self._failed(exc)

    def discard(self, row: Row, why: str) -> None:
        """Delete a row the client refuses to send (a damaged topic), counted as ``corrupt``: it must not hold up
        every row behind it."""
        with self._lock:
            try:
                self.store.discard(row.seq, len(row.payload.encode()), why)
            except sqlite3.Error as exc:
                self._failed(exc)

    def __len__(self) -> int:
        """Rows queued (in memory or the database in use)."""
        return self.store.rows

    def stats(self) -> dict[str, int]:
        """rows, bytes, drops per kind, store errors and rows stranded in a failed database."""
        with self._lock:
            return {**self.store.stats(), "errors": self.errors, "stranded": self.stranded}

    def close(self) -> None:
        """Close the store."""
        with self._lock:
            try:
                self.store.close()
            except sqlite3.Error as exc:
                log.warning("closing the outbox: %s", exc)
