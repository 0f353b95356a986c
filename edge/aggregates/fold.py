"""Folding a site's events into hourly counters (pure: no I/O; the kiosks' own timestamps are the clock)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge.events import SchemaError, validate, validate_inbound

log = logging.getLogger(__name__)

# Counters kept per (day, hour, counter); every figure on the page, in the CSV and in /metrics derives from them.
FIELDS: tuple[str, ...] = ("visits", "visit_seconds", "care_cues", "episodes", "alerts", "acknowledged",
                           "ack_seconds", "recovered", "calm_seconds", "alerts_acknowledged", "alerts_ack_base")
CARE_LABELS = ("sad", "fear")  # a customer who may need care rather than de-escalation
SITE = ""  # the counter value of whole-site rows
FUTURE_S = 600.0  # a kiosk time further ahead of this machine's clock is not taken as the kiosk's clock
MAX_VISIT_S = 86_400.0  # a visit reported longer than a day is not a visit (schema-valid numbers can be 1e308)


@dataclass(frozen=True)
class Increment:
    """Add ``amount`` to ``field`` of the hour ``day``/``hour`` (site-local) for ``counter`` ('' = the whole site)."""

    day: str
    hour: int
    counter: str
    field: str
    amount: float


@dataclass
class Episode:
    """What is remembered of an open alert episode until it is acknowledged and recovered (or forgotten)."""

    day: str
    hour: int
    kiosk: str
    start: float
    alert: bool = False
    acked: bool = False
    recovered: bool = False
    alert_acked: bool = False  # the alert level itself acknowledged (an ack of the watch before it does not count)

    def closed(self) -> bool:
        """Nothing more can count for it: calm, and its highest level acknowledged."""
        return self.recovered and (self.alert_acked if self.alert else self.acked)


def parse_ts(ts: str) -> float:
    """Unix time of an RFC 3339 UTC timestamp such as ``2026-11-22T10:00:00.123Z``."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Folder:
    """Turns visit/alert/ack (and, for the kiosk clock, emotion/health) messages into Increments."""

    def __init__(self, tz: ZoneInfo, per_counter: bool, care_share: float = 0.3, max_episodes: int = 10_000,
                 max_ids: int = 50_000, wall: Callable[[], float] = time.time) -> None:
        """``per_counter``: also keep rows per kiosk (off under the eu profile); bounds are for the remembered state;
        ``wall``: this machine's Unix time, only to refuse a kiosk time far in the future as its clock."""
        self.tz, self.per_counter, self.care_share, self.wall = tz, per_counter, care_share, wall
        self.episodes: OrderedDict[str, Episode] = OrderedDict()  # oldest forgotten first when full (counted)
        self.max_episodes = max_episodes
        self._ids: deque[str] = deque(maxlen=max_ids)  # QoS 1 duplicates: the last max_ids visit/alert event ids
        self._id_set: set[str] = set()
        self.kiosk_now: dict[str, float] = {}  # the newest event time seen from each kiosk: its clock for acks
        self.new_ids: list[str] = []  # visit/alert event ids first seen since taken (stored: a restart keeps them)
        self.changed: dict[str, Episode | None] = {}  # episodes opened, changed (or forgotten: None) since taken
        self.counts = {"duplicates": 0, "invalid": 0, "unmatched": 0, "stale_acks": 0, "episodes_forgotten": 0}

    def _bucket(self, t: float) -> tuple[str, int]:
        local = datetime.fromtimestamp(t, self.tz)
        return local.date().isoformat(), local.hour

    def _inc(self, day: str, hour: int, kiosk: str, field: str, amount: float = 1.0) -> list[Increment]:
        out = [Increment(day, hour, SITE, field, amount)]
        if self.per_counter:
            out.append(Increment(day, hour, kiosk, field, amount))
        return out

    def _seen(self, event_id: str) -> bool:
        if event_id in self._id_set:
            return True
        if len(self._ids) == self._ids.maxlen:
            self._id_set.discard(self._ids[0])
        self._ids.append(event_id)
        self._id_set.add(event_id)
        self.new_ids.append(event_id)
        return False

    def fold(self, kind: str, kiosk: str, payload: Any) -> list[Increment]:
        """The increments one message causes (none for a duplicate, an invalid message or an unrelated kind)."""
        try:
            if kind == "ack":
                validate_inbound("ack", payload)
                out = self._ack(kiosk, payload)
                self._mark(payload["alert_id"])
                return out
            validate(kind, payload)
        except SchemaError as exc:
            self.counts["invalid"] += 1
            log.debug("ignored invalid %s message from %s: %s", kind, kiosk, exc)
            return []
        # only the kinds that count remember their ids: emotion and health (one a second per kiosk) would push
        # a visit's id out of the window within the hour, and the outbox may resend it after a longer outage
        if kind in ("visit", "alert") and self._seen(payload["event_id"]):
            self.counts["duplicates"] += 1
            return []
        try:  # the schema checks a timestamp's form, not the date: 2026-02-30 passes it
            t = parse_ts(payload["ts"])
            if kind == "visit" and payload.get("started_at") is not None:
                parse_ts(payload["started_at"])
        except (ValueError, OverflowError) as exc:
            self.counts["invalid"] += 1
            log.debug("ignored %s message from %s with an impossible time: %s", kind, kiosk, exc)
            return []
        if t <= self.wall() + FUTURE_S:  # one glitch far ahead would inflate every later time to acknowledge
            self.kiosk_now[kiosk] = max(t, self.kiosk_now.get(kiosk, t))
        elif kind in ("visit", "alert"):  # stored on a day that has not come (and counted in every "last N days")
            self.counts["invalid"] += 1
            log.debug("ignored %s message from %s stamped %.0f s ahead of this clock", kind, kiosk, t - self.wall())
            return []
        summary = payload.get("summary") if kind == "visit" else None
        if summary is not None and not 0 <= summary["duration_s"] <= MAX_VISIT_S:
            self.counts["invalid"] += 1  # one 1e308 would make the site's visit time infinite for ever
            return []
        if kind == "visit":
            return self._visit(kiosk, payload)
        if kind == "alert":
            out = self._alert(kiosk, payload, t)
            self._mark(payload["alert_id"])
            return out
        return []

    def _mark(self, aid: str) -> None:
        if aid in self.episodes:
            self.changed[aid] = self.episodes[aid]

    def _visit(self, kiosk: str, ev: dict[str, Any]) -> list[Increment]:
        s = ev["summary"]
        if ev["phase"] != "end" or s is None:
            return []
        day, hour = self._bucket(parse_ts(ev["started_at"]))
        out = self._inc(day, hour, kiosk, "visits") + self._inc(day, hour, kiosk, "visit_seconds", s["duration_s"])
        if sum(s["state_share"].get(k, 0.0) for k in CARE_LABELS) >= self.care_share:
            out += self._inc(day, hour, kiosk, "care_cues")
        return out

    def _alert(self, kiosk: str, ev: dict[str, Any], t: float) -> list[Increment]:
        aid, level = ev["alert_id"], ev["level"]
        ep = self.episodes.get(aid)
        out: list[Increment] = []
        if ep is None:
            if level == "recovered":
                self.counts["unmatched"] += 1  # its start came before this subscriber did
                return []
            ep = self._open(aid, kiosk, t)
            out += self._inc(ep.day, ep.hour, kiosk, "episodes")
        if level == "alert" and not ep.alert:
            ep.alert = True
            out += self._inc(ep.day, ep.hour, kiosk, "alerts")
            out += self._inc(ep.day, ep.hour, kiosk, "alerts_ack_base")  # alerts whose own ack is counted
        if level == "recovered" and not ep.recovered:
            ep.recovered = True
            out += self._inc(ep.day, ep.hour, kiosk, "recovered")
            out += self._inc(ep.day, ep.hour, kiosk, "calm_seconds", max(0.0, t - ep.start))
        return out

    def _open(self, aid: str, kiosk: str, t: float) -> Episode:
        day, hour = self._bucket(t)
        ep = self.episodes[aid] = Episode(day, hour, kiosk, t)
        while len(self.episodes) > self.max_episodes:
            gone, _ = self.episodes.popitem(last=False)
            self.changed[gone] = None
            self.counts["episodes_forgotten"] += 1
        return ep

    def take_changed(self) -> dict[str, Episode | None]:
        """The episodes changed since the last call (None: forgotten), to store beside the batch's increments."""
        out, self.changed = self.changed, {}
        return out

    def take_new_ids(self) -> list[str]:
        """The event ids first seen since the last call, to store beside the batch's increments."""
        out, self.new_ids = self.new_ids, []
        return out

    def restore(self, episodes: dict[str, Episode], ids: list[str] | None = None,
                clocks: dict[str, float] | None = None) -> None:
        """State kept by a previous run: open episodes (oldest first; a message about one of them continues it
        instead of counting it again), the newest counted event ids (oldest first; a resend or a redelivery after
        the restart is still a duplicate) and each kiosk's clock (an ack first after the restart is timed)."""
        for aid, ep in episodes.items():
            self.episodes[aid] = ep
        while len(self.episodes) > self.max_episodes:
            self.episodes.popitem(last=False)
        for event_id in (ids or [])[-(self._ids.maxlen or 0):]:
            self._seen(event_id)
        self.new_ids = []
        self.kiosk_now.update(clocks or {})

    def _ack(self, kiosk: str, msg: dict[str, Any]) -> list[Increment]:
        ep = self.episodes.get(msg["alert_id"])
        if ep is None or ep.kiosk != kiosk:
            self.counts["unmatched"] += 1
            return []
        if ep.alert:  # the alert needs its own ack, as on the kiosk (it rings and reminds until then)
            if ep.alert_acked:
                return []  # a second tablet, or a QoS 1 duplicate
            if msg.get("level") == "watch":
                self.counts["stale_acks"] += 1  # the watch's card acknowledged after the alert: the kiosk keeps it
                return []
            ep.alert_acked = True
            out = self._inc(ep.day, ep.hour, kiosk, "alerts_acknowledged")
        elif ep.acked:
            return []  # a second tablet, or a QoS 1 duplicate
        else:
            out = []
        if ep.acked:
            return out  # the episode was acknowledged (and timed) at its watch
        ep.acked = True
        waited = max(0.0, self.kiosk_now.get(kiosk, ep.start) - ep.start)
        return out + self._inc(ep.day, ep.hour, kiosk, "acknowledged") + self._inc(ep.day, ep.hour, kiosk,
                                                                                   "ack_seconds", waited)
