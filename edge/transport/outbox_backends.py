"""The outbox's two stores: SQLite (WAL, in the state folder; survives restarts and kill -9) and memory."""

from __future__ import annotations

import bisect
import contextlib
import logging
import sqlite3
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
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created);
"""


def seq_floor() -> int:
    """A first sequence number for memory rows when a file's own counter cannot be read: microseconds since 1970
    (never under 2**40), so the rows of a later failure never reuse numbers an earlier one left in the file."""
    return max(1 << 40, time.time_ns() // 1000)


class MemoryStore(_Store):
    """The outbox without a state folder: bounded, in memory, lost on restart; writes nothing to disk."""

    def __init__(self, max_rows: int, max_bytes: int, max_age_s: float, clock: Callable[[], float] = time.time,
                 first_seq: int = 1) -> None:
        """``first_seq`` continues a failed SQLite store's numbering."""
        super().__init__(max_rows, max_bytes, max_age_s, clock)
        self._next = self.since_seq = first_seq
        self.file_shift = 0.0  # clock steps while these rows stand in for a failed file: its own rows move on adopt
        # (database file, why it failed, rows left in it): set when the file could not be opened at start for a
        # reason outside it (disk full, I/O, a lock); ``Outbox`` then retries it as after a failure at run time
        self.retry: tuple[Path, str, int] | None = None
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

    def _shift(self, step: float) -> None:
        for seq, (row, size, created) in self._rows.items():
            self._rows[seq] = (row, size, created + step)
        self.file_shift += step

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

    def discard(self, seq: int, size: int, why: str) -> None:
        """Delete one row that can never be sent, counted as ``corrupt`` in the drops."""
        if seq in self._rows:
            _, size = self._pop(seq)
            self._dropped("corrupt", size, why)


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
        self.since_seq = self.last_seq() + 1

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
        counts = self.rows, self.nbytes, dict(self.drops), self.offset, self._expired_at
        self.con.execute("BEGIN")
        try:
            seq = super().add(kind, topic, payload, retain)
            self.con.execute("COMMIT")
        except BaseException:  # a clock step seen in it is rolled back too, and seen again by the next store
            self._rollback()
            self.rows, self.nbytes, self.drops, self.offset, self._expired_at = counts
            raise
        return seq

    def _rollback(self) -> None:
        """Roll back, keeping the original error: after SQLITE_FULL SQLite may have rolled back already."""
        with contextlib.suppress(sqlite3.Error):
            self.con.execute("ROLLBACK")

    def adopt(self, rows: list[tuple[Row, int, float]], newest: dict[str, int] | None = None,
              shift: float = 0.0) -> int:
        """Insert rows kept in memory meanwhile, with their own sequence numbers, and delete the retained rows that
        ``newest`` (topic -> newest sequence number) supersedes, in one transaction (all or nothing: a full disk
        half-way leaves the file as it was, to be tried again); returns the rows deleted. ``shift``: the clock steps
        seen meanwhile, applied to this process's rows left in the file first."""
        self.con.execute("BEGIN")
        try:
            if shift:
                self._shift(shift)
            for row, size, created in rows:
                self.con.execute("INSERT INTO outbox (seq, kind, prio, topic, payload, retain, size, created) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (row.seq, row.kind, PRIORITY.get(row.kind, 0),
                                                                     row.topic, row.payload, int(row.retain), size,
                                                                     created))
            # every other retained row on the topic is older than this process's newest one, whatever its number
            # (after a start whose clock ran behind the last one's, an older row can carry a higher number)
            where = "FROM outbox WHERE topic = ? AND retain = 1 AND seq <> ?"
            gone, gone_bytes = 0, 0
            for topic, seq in (newest or {}).items():
                n, size = self.con.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) {where}", (topic, seq)).fetchone()
                if n:
                    self.con.execute(f"DELETE {where}", (topic, seq))
                    gone, gone_bytes = gone + int(n), gone_bytes + int(size)
            self.con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.rows += len(rows) - gone
        self.nbytes += sum(size for _, size, _ in rows) - gone_bytes
        return gone


    def _expire(self, cutoff: float) -> list[tuple[str, int]]:
        old = [(str(k), int(s)) for k, s in self.con.execute(
            "SELECT kind, size FROM outbox WHERE created < ?", (cutoff,)).fetchall()]
        if old:
            self.con.execute("DELETE FROM outbox WHERE created < ?", (cutoff,))
        return old

    def _shift(self, step: float) -> None:
        self.con.execute("UPDATE outbox SET created = created + ? WHERE seq >= ?", (step, self.since_seq))

    def _drop_one(self) -> tuple[str, int]:
        seq, kind, size = self.con.execute("SELECT seq, kind, size FROM outbox ORDER BY prio, seq LIMIT 1").fetchone()
        self.con.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        return str(kind), int(size)

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows above ``seq``, oldest first; a row whose text no longer decodes (a damaged page the
        file check does not see) is deleted and counted (``corrupt``), so it cannot stop the rows behind it."""
        out: list[Row] = []
        for s, k, t, p, r, size in self.con.execute(
                "SELECT seq, CAST(kind AS BLOB), CAST(topic AS BLOB), CAST(payload AS BLOB), retain, size "
                "FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall():
            try:
                out.append(Row(int(s), bytes(k).decode(), bytes(t).decode(), bytes(p).decode(), bool(r)))
            except (UnicodeDecodeError, TypeError):
                self.discard(int(s), int(size or 0), "not readable (damaged row)")
        return out

    def discard(self, seq: int, size: int, why: str) -> None:
        """Delete one row that can never be sent, counted as ``corrupt`` in the drops."""
        if self.con.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount:
            self._dropped("corrupt", size, why)

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
