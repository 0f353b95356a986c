"""The aggregates database: one SQLite file of hourly counters per site, day, hour and counter (no visit rows)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.aggregates.fold import FIELDS, SITE, Episode, Increment

SCHEMA_VERSION = 1
MAX_SEEN = 50_000  # counted event ids kept (the Folder's duplicate window)
_COLS = ", ".join(f"{f} REAL NOT NULL DEFAULT 0" for f in FIELDS)


def derived(row: dict[str, float]) -> dict[str, float | None]:
    """The figures managers read, from one row of summed counters (None where the base is zero)."""
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "watches": row["episodes"] - row["alerts"],
        "acknowledged_share": ratio(row["acknowledged"], row["episodes"]),
        # over the alerts counted since alert acks are (a database from before has alerts but no such acks)
        "alerts_acknowledged_share": ratio(row["alerts_acknowledged"], row["alerts_ack_base"]),
        "mean_ack_s": ratio(row["ack_seconds"], row["acknowledged"]),
        "calmed_share": ratio(row["recovered"], row["episodes"]),
        "mean_calm_s": ratio(row["calm_seconds"], row["recovered"]),
        "care_cue_share": ratio(row["care_cues"], row["visits"]),
        "mean_visit_s": ratio(row["visit_seconds"], row["visits"]),
    }


class Store:
    """Hourly counters in SQLite (WAL: the page reads while the subscriber writes)."""

    def __init__(self, path: Path | str, site: str) -> None:
        """Open (or create) the database at ``path`` (``:memory:`` for tests) for one site."""
        self.path, self.site = str(path), site
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()  # one connection shared by the writer and the page's threads
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute(f"CREATE TABLE IF NOT EXISTS hourly (site TEXT NOT NULL, day TEXT NOT NULL, hour INTEGER "
                        f"NOT NULL, counter TEXT NOT NULL, {_COLS}, PRIMARY KEY (site, day, hour, counter))")
        # open alert episodes (no customer data: an alert id, its hour, counter and flags), so that a restart does
        # not count an episode again when its next message arrives
        self.db.execute("CREATE TABLE IF NOT EXISTS episodes (alert_id TEXT PRIMARY KEY, day TEXT NOT NULL, "
                        "hour INTEGER NOT NULL, kiosk TEXT NOT NULL, start REAL NOT NULL, alert INTEGER NOT NULL, "
                        "acked INTEGER NOT NULL, recovered INTEGER NOT NULL, alert_acked INTEGER NOT NULL DEFAULT 0)")
        self._add_missing_columns()
        # the newest counted visit/alert event ids (a kiosk's outbox resend or the broker's redelivery after a
        # restart is still a duplicate) and each kiosk's newest event time (its clock for timing acks)
        self.db.execute("CREATE TABLE IF NOT EXISTS seen_events (event_id TEXT PRIMARY KEY)")
        self.db.execute("CREATE TABLE IF NOT EXISTS kiosk_clock (kiosk TEXT PRIMARY KEY, t REAL NOT NULL)")
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.db.commit()

    def _add_missing_columns(self) -> None:
        """Columns added since a file was created (each with its default: 0, as that file never counted them)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(hourly)")}
        for f in FIELDS:
            if f not in have:
                self.db.execute(f"ALTER TABLE hourly ADD COLUMN {f} REAL NOT NULL DEFAULT 0")
        if "alert_acked" not in {r[1] for r in self.db.execute("PRAGMA table_info(episodes)")}:
            self.db.execute("ALTER TABLE episodes ADD COLUMN alert_acked INTEGER NOT NULL DEFAULT 0")
            # the level an old ack covered is unknown: taken as the alert's, so such an episode can still close
            self.db.execute("UPDATE episodes SET alert_acked = acked WHERE alert = 1")

    def episodes(self) -> dict[str, Episode]:
        """The open episodes kept by the last run, oldest first."""
        with self.lock:
            rows = self.db.execute("SELECT alert_id, day, hour, kiosk, start, alert, acked, recovered, alert_acked "
                                   "FROM episodes ORDER BY start").fetchall()
        return {r[0]: Episode(r[1], int(r[2]), r[3], float(r[4]), bool(r[5]), bool(r[6]), bool(r[7]), bool(r[8]))
                for r in rows}

    def seen_ids(self, limit: int = MAX_SEEN) -> list[str]:
        """The newest ``limit`` counted event ids, oldest first."""
        with self.lock:
            rows = self.db.execute("SELECT event_id FROM seen_events ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in reversed(rows)]

    def kiosk_clocks(self) -> dict[str, float]:
        """Each kiosk's newest event time as last stored."""
        with self.lock:
            return {k: float(t) for k, t in self.db.execute("SELECT kiosk, t FROM kiosk_clock")}

    def add(self, increments: Iterable[Increment], episodes: dict[str, Episode | None] | None = None,
            ids: Iterable[str] = (), clocks: dict[str, float] | None = None) -> int:
        """Add the increments, keep (or, None, forget) the changed ``episodes``, the newly counted event ``ids`` and
        the kiosks' ``clocks``, in one transaction; how many increments there were."""
        n = 0
        with self.lock, self.db:
            self.db.executemany("INSERT OR IGNORE INTO seen_events VALUES (?)", ((i,) for i in ids))
            self.db.execute("DELETE FROM seen_events WHERE rowid <= (SELECT MAX(rowid) FROM seen_events) - ?",
                            (MAX_SEEN,))
            self.db.executemany("INSERT OR REPLACE INTO kiosk_clock VALUES (?, ?)", (clocks or {}).items())
            for aid, ep in (episodes or {}).items():
                if ep is None or ep.closed():
                    self.db.execute("DELETE FROM episodes WHERE alert_id = ?", (aid,))
                else:
                    self.db.execute("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    (aid, ep.day, ep.hour, ep.kiosk, ep.start, int(ep.alert), int(ep.acked),
                                     int(ep.recovered), int(ep.alert_acked)))
            for inc in increments:
                if inc.field not in FIELDS:
                    raise ValueError(f"unknown aggregate field {inc.field!r}")
                f = inc.field
                self.db.execute(f"INSERT INTO hourly (site, day, hour, counter, {f}) VALUES (?, ?, ?, ?, ?) "
                                f"ON CONFLICT (site, day, hour, counter) DO UPDATE SET {f} = {f} + excluded.{f}",
                                (self.site, inc.day, inc.hour, inc.counter, inc.amount))
                n += 1
        return n

    def _rows(self, group: str, where: str = "", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        sums = ", ".join(f"SUM({f}) AS {f}" for f in FIELDS)
        with self.lock:
            cur = self.db.execute(f"SELECT {group}, {sums} FROM hourly WHERE site = ? {where} GROUP BY {group} "
                                  f"ORDER BY {group}", (self.site, *args))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _span(self, since: str | None, counter: str = SITE) -> tuple[str, tuple[Any, ...]]:
        where: str = "AND counter = ?"
        args: tuple[Any, ...] = (counter,)
        if since:
            where, args = where + " AND day >= ?", (*args, since)
        return where, args

    def by_day(self, since: str | None = None, counter: str = SITE) -> list[dict[str, Any]]:
        """Summed counters per day."""
        return self._rows("day", *self._span(since, counter))

    def by_hour_of_day(self, since: str | None = None, counter: str = SITE) -> list[dict[str, Any]]:
        """Summed counters per hour of the day (0..23, site-local), over every day since ``since``."""
        return self._rows("hour", *self._span(since, counter))

    def hourly(self, since: str | None = None) -> list[dict[str, Any]]:
        """Every stored row (day, hour, counter), oldest first: the CSV export."""
        where = "AND day >= ?" if since else ""
        return self._rows("day, hour, counter", where, (since,) if since else ())

    def totals(self, since: str | None = None) -> dict[str, dict[str, Any]]:
        """Summed counters per counter ('' = the whole site)."""
        where = "AND day >= ?" if since else ""
        return {r["counter"]: r for r in self._rows("counter", where, (since,) if since else ())}

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.db.close()
