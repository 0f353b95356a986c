"""Opening the outbox at start: a healthy file is used, a corrupt one is moved aside (its rows counted), else memory."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from edge.transport.outbox import DB_NAME, MemoryStore, Outbox, SqliteStore
from edge.transport.outbox_backends import seq_floor
from edge.transport.outbox_store import _Store

log = logging.getLogger(__name__)


def _read_one(path: Path, sql: str) -> int | None:
    """One integer read from the outbox file read-only (0 when the query finds no row), None when it cannot be read."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        r = con.execute(sql).fetchone()
        return int(r[0]) if r else 0
    except sqlite3.Error:
        return None
    finally:
        with contextlib.suppress(sqlite3.Error):
            con.close()


def _count_rows(path: Path) -> int | None:
    """Rows a damaged outbox file still shows (read-only; a table scan: a broken index must not hide them), or
    None when it cannot be read at all."""
    return _read_one(path, "SELECT COUNT(*) FROM outbox NOT INDEXED")


Salvaged = tuple[str, int, str, str, bool, int, float]  # kind, prio, topic, payload, retain, size, created


def _salvage(path: Path) -> list[Salvaged]:
    """The rows of a damaged outbox file that still read back whole, oldest first (a table scan that stops at the
    first unreadable page; a row whose text does not decode is left out)."""
    out: list[Salvaged] = []
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return out
    try:
        cur = con.execute("SELECT CAST(kind AS BLOB), prio, CAST(topic AS BLOB), CAST(payload AS BLOB), retain, "
                          "size, created FROM outbox NOT INDEXED ORDER BY seq")
        for k, prio, t, p, r, size, created in cur:
            try:
                out.append((bytes(k).decode(), int(prio), bytes(t).decode(), bytes(p).decode(), bool(r), int(size),
                            float(created)))
            except (UnicodeDecodeError, TypeError, ValueError):
                continue
    except sqlite3.Error:
        pass  # what was read before the damaged page is kept
    finally:
        with contextlib.suppress(sqlite3.Error):
            con.close()
    return out


def _last_seq(path: Path) -> int | None:
    """The highest sequence number the outbox file has handed out (read-only), or None when it cannot be read."""
    return _read_one(path, "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")


_TRANSIENT = {"SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_PERM",
              "SQLITE_NOMEM", "SQLITE_PROTOCOL"}


def _transient(exc: sqlite3.DatabaseError) -> bool:
    """Whether opening failed for a reason outside the file (disk full, I/O, locks), not because it is damaged."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name:
        return name in _TRANSIENT or name.startswith("SQLITE_IOERR")
    text = str(exc)  # no error code (older Python): judge by the message
    return any(k in text for k in ("unable to open", "locked", "disk I/O", "disk is full", "readonly"))


def _move_aside(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            os.replace(p, f"{p}.corrupt")


def open_store(state_dir: Path | None, max_rows: int, max_bytes: int, max_age_s: float,
               memory_rows: int) -> _Store:
    """The SQLite outbox in ``state_dir``, else (none, or unusable: logged) a memory store of ``memory_rows``.

    Rows lost with a corrupt file are counted in the store's drops as ``corrupt`` (``health.drops.outbox_corrupt``;
    1 when the file is too damaged to count them).
    """
    memory = MemoryStore(memory_rows, max_bytes, max_age_s)
    if state_dir is None:
        return memory
    path = state_dir / DB_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.stat().st_size == 0:
            log.warning("outbox %s is empty (0 bytes): any events it held before are lost%s", path,
                        " (its write-ahead log is replayed if intact)" if Path(f"{path}-wal").exists() else "")
        return SqliteStore(path, max_rows, max_bytes, max_age_s)
    except sqlite3.DatabaseError as exc:  # OperationalError included
        if not path.exists() or _transient(exc):  # full disk, I/O error, locked: the file is fine, leave it
            log.error("outbox %s cannot be used now (%s); events are kept in memory and the file, left as it is, "
                      "is tried again every %.0f s", path, exc, Outbox.RETRY_S)
            last = _last_seq(path)  # memory rows numbered above the file's: they are moved into it later
            memory = MemoryStore(memory_rows, max_bytes, max_age_s, first_seq=seq_floor() if last is None else last + 1)
            memory.retry = (path, str(exc), _count_rows(path) or 0)
            return memory
        problem: Exception = exc
    except OSError as exc:
        log.error("state folder %s cannot be used (%s); events are kept in memory only", state_dir, exc)
        return memory
    found = _count_rows(path)
    kept = _salvage(path)
    lost = None if found is None else max(0, found - len(kept))
    log.error("outbox %s is unreadable or damaged (%s); moved aside as %s.corrupt, %d queued event(s) that still "
              "read back copied to a new file, %s lost", path, str(problem).splitlines()[0][:200], path.name, len(kept),
              "an unknown number" if lost is None else lost)
    try:
        _move_aside(path)
        store: _Store = SqliteStore(path, max_rows, max_bytes, max_age_s)
    except (OSError, sqlite3.Error) as exc:
        log.error("outbox %s cannot be recreated (%s); events are kept in memory only", path, exc)
        store = memory
    try:
        for kind, prio, topic, payload, retain, size, created in kept:
            store._insert(kind, prio, topic, payload, retain, size, created)  # noqa: SLF001 - its own rows, as they were
            store.rows += 1
            store.nbytes += size
    except sqlite3.Error as exc:
        log.error("outbox %s: copying the rows that read back failed (%s)", path, exc)
    if lost is None or lost:
        store.drops["corrupt"] = 1 if lost is None else lost
    return store
