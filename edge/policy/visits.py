"""Anonymous visits: a fresh random id per customer presence, never a face embedding (pure logic)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.types import EMOTIONS


@dataclass
class Visit:
    """One customer's stay at the counter, known only by a random id."""

    visit_id: str
    started_t: float
    last_seen_t: float
    state_time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(EMOTIONS, 0.0))
    peak_escalation: float = 0.0
    alert_raised: bool = False
    acknowledged: bool = False
    last_escalation: float = 0.0
    calmed: bool | None = None  # set by the alert policy: True once it sent `recovered`, None while unknown
    _last_state_t: float | None = None

    def add_state(self, t: float, label: str, escalation: float) -> None:
        """Account time spent in ``label`` since the previous state sample, up to the last moment the customer was
        seen (a departed customer's last state must not fill the time until the visit ends)."""
        end = min(t, self.last_seen_t)
        if self._last_state_t is not None and end > self._last_state_t:
            self.state_time[label] += min(end - self._last_state_t, 5.0)
        self._last_state_t = max(end, self._last_state_t or end)
        self.peak_escalation = max(self.peak_escalation, escalation)
        self.last_escalation = escalation

    def summary(self, end_t: float) -> dict[str, object]:
        """Anonymous end-of-visit summary."""
        total = sum(self.state_time.values())
        share = {k: round(v / total, 4) if total > 0 else 0.0 for k, v in self.state_time.items()}
        calmed = self.calmed
        if calmed is None:  # no verdict from the alert policy: escalation fell to under half its peak
            calmed = self.last_escalation < 0.5 * max(self.peak_escalation, 1e-9)
        return {
            "duration_s": round(max(end_t - self.started_t, 0.0), 3),
            "state_share": share,
            "peak_escalation": round(self.peak_escalation, 4),
            "alert_raised": self.alert_raised,
            "acknowledged": self.acknowledged,
            "calmed_down": bool(self.alert_raised and calmed),
        }


@dataclass(frozen=True)
class VisitEvent:
    """A visit started or ended."""

    phase: str  # "start" | "end"
    visit: Visit
    t: float


class VisitTracker:
    """Starts a visit after a face has been present ``start_s``; ends it after ``end_s`` with no face or speech."""

    def __init__(self, start_s: float, end_s: float, new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        """Configure timings; ``new_id`` makes visit ids (random by default)."""
        self.start_s = start_s
        self.end_s = end_s
        self.new_id = new_id
        self.current: Visit | None = None
        self._face_since: float | None = None

    def observe(self, t: float, face: bool | None, speech: bool) -> list[VisitEvent]:
        """Record presence evidence at ``t`` (``face`` None: this observation says nothing about a face, e.g. a
        voice window); return the visit events it causes. Only a face observation can start a visit."""
        events: list[VisitEvent] = []
        if face is True:
            self._face_since = t if self._face_since is None else self._face_since
        elif face is False:
            self._face_since = None
        if self.current is not None:
            if face or speech:
                self.current.last_seen_t = max(self.current.last_seen_t, t)
            events += self.tick(t)
        if (face is True and self.current is None and self._face_since is not None
                and t - self._face_since >= self.start_s):
            self.current = Visit(visit_id=self.new_id(), started_t=self._face_since, last_seen_t=t)
            events.append(VisitEvent("start", self.current, self._face_since))
        return events

    def end(self, t: float) -> list[VisitEvent]:
        """End the current visit at ``t`` (staff pause) and forget any face seen so far."""
        self._face_since = None
        if self.current is None:
            return []
        visit, self.current = self.current, None
        return [VisitEvent("end", visit, t)]

    def tick(self, t: float) -> list[VisitEvent]:
        """End the current visit if it has been empty for ``end_s``."""
        if self.current is not None and t - self.current.last_seen_t >= self.end_s:
            visit, self.current = self.current, None
            return [VisitEvent("end", visit, visit.last_seen_t)]
        return []
