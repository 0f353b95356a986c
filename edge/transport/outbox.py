"""Store-and-forward outbox: events wait (SQLite WAL in the state folder, else memory) until the broker acks them.

Drop rule when full (rows, bytes) or too old: the oldest row of the lowest priority goes first, i.e. oldest
``emotion``/``health`` rows, then ``visit``, then ``alert``; each drop is counted per kind (``health.drops``).
Only validated JSON payloads ever go in; ``status`` never does (it is retained and re-sent on every connect).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from edge.transport.outbox_store import PRIORITY, Row, _Store

log = logging.getLogger(__name__)

DB_NAME = "outbox.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    prio INTEGER NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, retain INTEGER NOT NULL,
    size INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_prio ON outbox (prio, seq);
"""


class MemoryStore(_Store):
    """The outbox without a state folder: bounded, in memory, lost on restart; writes nothing to disk."""

    def __init__(self, max_rows: int, max_bytes: int, max_age_s: float, clock: Callable[[], float] = time.time,
                 first_seq: int = 1) -> None:
        """``first_seq`` continues a failed SQLite store's numbering."""
        super().__init__(max_rows, max_bytes, max_age_s, clock)
        self._next = first_seq
        self._rows: OrderedDict[int, tuple[Row, int, float]] = OrderedDict()
        self._by_prio: dict[int, OrderedDict[int, None]] = {}

    def _insert(self, kind: str, prio: int, topic: str, payload: str, retain: bool, size: int, now: float) -> int:
        seq, self._next = self._next, self._next + 1
        self._rows[seq] = (Row(seq, kind, topic, payload, retain), size, now)
        self._by_prio.setdefault(prio, OrderedDict())[seq] = None
        return seq

    def _pop(self, seq: int) -> tuple[str, int]:
        row, size, _ = self._rows.pop(seq)
        self._by_prio[PRIORITY.get(row.kind, 0)].pop(seq, None)
        return row.kind, size

    def _expire(self, cutoff: float) -> list[tuple[str, int]]:
        old = []
        for seq, (_, _, created) in self._rows.items():
            if created >= cutoff:
                break
            old.append(seq)
        return [self._pop(seq) for seq in old]

    def _drop_one(self) -> tuple[str, int]:
        prio = min(p for p, seqs in self._by_prio.items() if seqs)
        return self._pop(next(iter(self._by_prio[prio])))

    def queued(self) -> list[tuple[Row, int, float]]:
        """Every queued row with its size and creation time, oldest first."""
        return list(self._rows.values())

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows above ``seq``, oldest first."""
        keys = list(self._rows)
        i = bisect.bisect_right(keys, seq)
        return [self._rows[s][0] for s in keys[i:i + limit]]

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove acknowledged rows."""
        for seq in seqs:
            if seq in self._rows:
                _, size = self._pop(seq)
                self.rows -= 1
                self.nbytes -= size


class SqliteStore(_Store):
    """The persistent outbox: one SQLite file (WAL, synchronous=NORMAL) that survives restarts and kill -9."""

    def __init__(self, path: Path, max_rows: int, max_bytes: int, max_age_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        """Open or create ``path``; sqlite3.DatabaseError if it is not a healthy outbox database."""
        super().__init__(max_rows, max_bytes, max_age_s, clock)
        self.path = path
        self.con = sqlite3.connect(str(path), timeout=2.0, isolation_level=None, check_same_thread=False)
        try:
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=NORMAL")
            self.con.execute("PRAGMA temp_store=MEMORY")  # never a temporary file elsewhere
            self.con.executescript(_SCHEMA)
            check = self.con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            rows, nbytes = self.con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox").fetchone()
            self.con.execute("SELECT seq, kind, prio, topic, payload, retain, size, created FROM outbox LIMIT 1")
        except BaseException:
            self.con.close()
            raise
        self.rows, self.nbytes = int(rows), int(nbytes)

    def last_seq(self) -> int:
        """Highest sequence number handed out so far."""
        r = self.con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(r[0]) if r else 0

    def _insert(self, kind: str, prio: int, topic: str, payload: str, retain: bool, size: int, now: float) -> int:
        cur = self.con.execute("INSERT INTO outbox (kind, prio, topic, payload, retain, size, created) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", (kind, prio, topic, payload, int(retain), size, now))
        return int(cur.lastrowid or 0)

    def add(self, kind: str, topic: str, payload: str, retain: bool) -> int:
        """Append one message and apply the limits, in one transaction (counters restored if it fails)."""
        counts = self.rows, self.nbytes, dict(self.drops)
        self.con.execute("BEGIN")
        try:
            seq = super().add(kind, topic, payload, retain)
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.rows, self.nbytes, self.drops = counts
            raise
        return seq

    def _rollback(self) -> None:
        """Roll back, keeping the original error: after SQLITE_FULL SQLite may have rolled back already."""
        with contextlib.suppress(sqlite3.Error):
            self.con.execute("ROLLBACK")

    def adopt(self, rows: list[tuple[Row, int, float]]) -> None:
        """Insert rows kept in memory meanwhile, with their own sequence numbers, in one transaction."""
        self.con.execute("BEGIN")
        try:
            for row, size, created in rows:
                self.con.execute("INSERT INTO outbox (seq, kind, prio, topic, payload, retain, size, created) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (row.seq, row.kind, PRIORITY.get(row.kind, 0),
                                                                     row.topic, row.payload, int(row.retain), size,
                                                                     created))
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.rows += len(rows)
        self.nbytes += sum(size for _, size, _ in rows)

    def _expire(self, cutoff: float) -> list[tuple[str, int]]:
        old = [(str(k), int(s)) for k, s in self.con.execute(
            "SELECT kind, size FROM outbox WHERE created < ?", (cutoff,)).fetchall()]
        if old:
            self.con.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
        return old

    def _drop_one(self) -> tuple[str, int]:
        seq, kind, size = self.con.execute("SELECT seq, kind, size FROM outbox ORDER BY prio, seq LIMIT 1").fetchone()
        self.con.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        return str(kind), int(size)

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows above ``seq``, oldest first."""
        return [Row(int(s), str(k), str(t), str(p), bool(r)) for s, k, t, p, r in self.con.execute(
            "SELECT seq, kind, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))]

    def delete(self, seqs: Iterable[int]) -> None:
        """Remove acknowledged rows in one transaction (counters restored if it fails)."""
        counts = self.rows, self.nbytes
        self.con.execute("BEGIN")
        try:
            for seq in seqs:
                r = self.con.execute("SELECT size FROM outbox WHERE seq = ?", (seq,)).fetchone()
                if r is not None:
                    self.con.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                    self.rows -= 1
                    self.nbytes -= int(r[0])
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.rows, self.nbytes = counts
            raise

    def close(self) -> None:
        """Close the database (the WAL is checkpointed by SQLite)."""
        self.con.close()


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
        self._lock = threading.Lock()

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
            first = 1 << 40  # above any sequence number the file can have reached
        self.store = MemoryStore(old.max_rows, old.max_bytes, old.max_age_s, old.clock, first)
        self.store.drops = dict(old.drops)
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
            store.adopt(mem.queued())
        except sqlite3.Error as exc:
            log.debug("outbox database %s still unusable: %s", path, exc)
            with contextlib.suppress(sqlite3.Error):
                store.close()
            return
        store.drops = dict(mem.drops)
        self.store, self.stranded, self.problem, self._failed_path = store, 0, None, None
        self.generation += 1
        log.warning("outbox database %s works again; %d queued event(s) in it", path, store.rows)

    def add(self, kind: str, topic: str, payload: str, retain: bool) -> int:
        """Queue one message; returns its sequence number."""
        with self._lock:
            self._resume()
            try:
                return self.store.add(kind, topic, payload, retain)
            except sqlite3.Error as exc:
                self._failed(exc)
                return self.store.add(kind, topic, payload, retain)

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
