"""A replayed day at a site: customers at two counters run through the real judgement core (edge.policy.core), with
staff acknowledging some alerts; every event in time order, as the kiosks would have published them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from edge.config import parse_config
from edge.events import EventFactory
from edge.policy.core import Core, Observation
from edge.types import EMOTIONS, Reading

SITE, TZ = "site-agg", ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 11, 23, tzinfo=TZ)  # a Monday
# customer kinds: (name, [(label, seconds)], staff acknowledge the first alert-level message after N s or never)
KINDS: list[tuple[str, list[tuple[str, float]], float | None]] = [
    ("calm", [("neutral", 50)], None),
    ("upset-calmed", [("neutral", 8), ("angry", 30), ("neutral", 30)], 6.0),
    ("upset-left", [("neutral", 5), ("angry", 30)], None),
    ("sad", [("sad", 45)], None),
    ("happy", [("happy", 40)], None),
    ("upset-acked-left", [("angry", 35)], 4.0),
    ("brief", [("neutral", 6), ("angry", 5), ("neutral", 30)], None),
]


@dataclass
class Day:
    """The events (time-ordered) and what was scripted: customers per kind and counter."""

    events: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)  # (t, kiosk, kind, payload)
    customers: dict[str, int] = field(default_factory=dict)


def _reading(t: float, label: str) -> Observation:
    p = np.full(len(EMOTIONS), 0.02)
    p[EMOTIONS.index(label)] = 0.88
    return Observation("face", t, Reading("face", t, p / p.sum(), 0.8))


def _kiosk_day(kiosk: str, offset_s: float, every_s: float, day: Day) -> None:
    cfg = parse_config({"identity": {"site_id": SITE, "kiosk_id": kiosk, "counter_name": kiosk.upper()},
                        "mqtt": {"enabled": False}})
    clock = [0.0]
    factory = EventFactory(cfg.identity, clock=lambda: clock[0])
    core = Core(cfg, factory, to_wall=lambda t: t)
    opening, closing = DAY.replace(hour=9).timestamp() + offset_s, DAY.replace(hour=17).timestamp()
    t, n = opening, 0
    while t < closing:
        name, script, ack_after = KINDS[n % len(KINDS)]
        day.customers[name] = day.customers.get(name, 0) + 1
        obs = [_reading(t + 0.5 * i + sum(s for _, s in script[:j]), label)
               for j, (label, secs) in enumerate(script) for i in range(int(secs * 2))]
        leave = t + sum(s for _, s in script)
        obs += [Observation("face", leave + 0.5 * i, None) for i in range(int(2 * (cfg.fusion.visit_end_s + 3)))]
        ack_at: tuple[float, str] | None = None
        step = t
        while obs or step < leave + cfg.fusion.visit_end_s + 2:
            clock[0] = step
            out = []
            while obs and obs[0].t <= step:
                out += core.observe(obs.pop(0))
            out += core.tick(step)
            for kind, body in out:
                if kind == "cue":  # care cues (issue 21): the aggregates count care from visit summaries
                    continue
                day.events.append((step, kiosk, kind, factory.make(kind, **body)))
                if kind == "alert" and body["level"] == "alert" and ack_after is not None and ack_at is None:
                    ack_at = (step + ack_after, body["alert_id"])
            if ack_at is not None and step >= ack_at[0]:
                core.acknowledge(ack_at[1], step)
                day.events.append((step, kiosk, "ack", {"alert_id": ack_at[1], "by": "tablet"}))
                ack_after, ack_at = None, None
            step = round(step + 0.25, 3)
        n += 1
        t += every_s + (37 * n) % 90  # irregular arrivals


def replay_day() -> Day:
    """Both counters' day, merged in time order (acks after the event they answer)."""
    day = Day()
    _kiosk_day("k1", 0.0, 300.0, day)
    _kiosk_day("k2", 130.0, 420.0, day)
    day.events.sort(key=lambda e: e[0])  # stable: each kiosk's own order is kept
    return day
