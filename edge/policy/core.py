"""The judgement core shared by ``run`` and ``replay``: observations in, event payloads out (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config import KioskConfig
from edge.events import EventFactory, iso
from edge.policy.alerts import AlertPolicy
from edge.policy.cues import CuePolicy
from edge.policy.fusion import FusedState, Fusion
from edge.policy.visits import VisitEvent, VisitTracker
from edge.types import EMOTIONS, Reading

Event = tuple[str, dict[str, Any]]
ALERT_STEP_S = 0.25  # the alert policy judges the fused state this often (or every emit, if more often)


@dataclass(frozen=True)
class Observation:
    """A modality looked at time ``t``; ``reading`` is None when it found no customer face / no speech."""

    modality: str
    t: float
    reading: Reading | None


def wait_s(due: float | None, now: float, most: float = 0.1, least: float = 0.01) -> float:
    """How long a loop may wait for input before ``tick`` is due: ``most`` at most, ``least`` at least (a tick that
    keeps failing leaves ``due`` in the past: the loop must not spin)."""
    return most if due is None else min(most, max(least, due - now))


class Core:
    """Fusion + anonymous visits + alert policy + event building on the pipeline's clock (monotonic or media time)."""

    def __init__(self, cfg: KioskConfig, factory: EventFactory, to_wall: Callable[[float], float]) -> None:
        """``to_wall`` maps pipeline time to Unix time for event timestamps."""
        self.cfg = cfg
        self.factory = factory
        self.to_wall = to_wall
        self.fusion = Fusion(cfg.fusion, cfg.analysis.voice_hop_s)
        self.visits = VisitTracker(cfg.fusion.visit_start_s, cfg.fusion.visit_end_s)
        self.alerts = AlertPolicy(cfg.alerts, cfg.identity.counter_name)
        self.cues = CuePolicy(lambda: self.alerts.cfg, cfg.identity.counter_name)  # care / good-moment cues
        self._next_emit: float | None = None
        self._next_judge: float | None = None
        self.last_state: FusedState | None = None

    def observe(self, obs: Observation) -> list[Event]:
        """Take one observation; return visit events it causes."""
        if obs.reading is not None:
            self.fusion.update(obs.reading)
        # a voice observation says nothing about the face (None): the last face observation must not be taken as
        # seen again at every voice hop, or a visit outlives the customer once face observations stop coming
        face = (obs.reading is not None) if obs.modality == "face" else None
        speech = obs.modality == "voice" and obs.reading is not None
        return self._visit_events(self.visits.observe(obs.t, face, speech))

    def tick(self, now: float) -> list[Event]:
        """Advance time: end stale visits; an ``emotion`` event every ``emit_interval_s``; ``alert``s as they arise."""
        events = self._visit_events(self.visits.tick(now))
        interval = self.cfg.fusion.emit_interval_s
        if self._next_emit is None:
            self._next_emit = now + interval
        emit = now >= self._next_emit
        if not emit and self._next_judge is not None and now < self._next_judge:
            return events
        state = self.fusion.state(now)
        visit = self.visits.current
        if visit is not None and state is not None:  # the peak of every judged state: the alert policy's view
            visit.peak_escalation = max(visit.peak_escalation, state.escalation)
        if emit:
            # the next one an interval after this one, not on a fixed grid: a late tick (1.99 s) was followed by the
            # grid slot 10 ms later with an overlapping window. Each emission slips by its tick's lateness, the price
            # of never being closer than emit_interval_s, as the privacy report states; the main loop wakes at
            # ``next_due`` (``wait_s``), so that lateness is a thread wake-up, not a loop turn
            self._next_emit = max(self._next_emit + interval, now + interval)
            self.last_state = state
            if state is not None:
                if visit is not None:
                    visit.add_state(now, state.label, state.escalation)
                events.append(("emotion", self.emotion_body(state, now - interval, visit.visit_id if visit else None)))
        # The alert policy looks more often than emotion events go out, so an alert is not held back by up to
        # one emit interval.
        self._next_judge = now + min(ALERT_STEP_S, interval)
        events += [("alert", body) for body in self.alerts.update(now, state, visit)]
        events += [("cue", body) for body in self.cues.update(now, state, visit, self.alerts.active is not None)]
        return events

    def next_due(self) -> float | None:
        """When ``tick`` next has work (an emission or an alert check); None before the first tick."""
        due = [t for t in (self._next_emit, self._next_judge) if t is not None]
        return min(due) if due else None

    def end_visit(self, now: float) -> list[Event]:
        """End the current visit now (staff pause): its end event; the fused state and face presence are forgotten."""
        events = self._visit_events(self.visits.end(now))
        self.fusion.reset()
        return events

    def current_body(self, paused: bool) -> dict[str, Any]:
        """Body of the retained ``current`` message: the open episode of the current visit (or none), paused."""
        visit = self.visits.current
        got = self.alerts.episode()
        episode = None
        if visit is not None and got is not None and got[0]["visit_id"] == visit.visit_id:
            last, since, acked = got
            episode = {k: last[k] for k in ("alert_id", "visit_id", "level", "reason", "evidence", "hint")}
            episode |= {"since": iso(self.to_wall(since)), "acknowledged": acked}
        cue, sent = self.cues.current() or (None, 0.0)
        if cue is not None and visit is not None and cue["visit_id"] == visit.visit_id:
            cue = {k: cue[k] for k in ("cue_id", "visit_id", "kind", "hint")} | {"since": iso(self.to_wall(sent))}
        else:
            cue = None
        return {"counter_name": self.cfg.identity.counter_name, "paused": paused,
                "visit_id": visit.visit_id if visit is not None else None, "episode": episode, "cue": cue}

    def acknowledge(self, alert_id: str, now: float, level: str | None = None) -> bool:
        """Staff acknowledged ``alert_id`` (from a tablet, at the card's ``level``); False if it is not an alert of
        the current visit."""
        return self.alerts.acknowledge(alert_id, now, level)

    def emotion_body(self, s: FusedState, window_start: float, visit_id: str | None) -> dict[str, Any]:
        """The ``emotion`` payload body for a fused state."""
        return {
            "visit_id": visit_id,
            "label": s.label,
            "probs": {e: round(float(p), 4) for e, p in zip(EMOTIONS, s.probs, strict=True)},
            "valence": round(s.valence, 4),
            "arousal": round(s.arousal, 4),
            "escalation": round(s.escalation, 4),
            "confidence": round(s.confidence, 4),
            "modalities": {m: {"used": ms.used, "confidence": ms.confidence, "age_s": ms.age_s}
                           for m, ms in s.modalities.items()},
            "window_start": iso(self.to_wall(window_start)),
            "window_end": iso(self.to_wall(s.t)),
        }

    def _visit_events(self, evs: list[VisitEvent]) -> list[Event]:
        out: list[Event] = []
        for ev in evs:
            v = ev.visit
            if ev.phase == "start":
                out.append(("visit", {"visit_id": v.visit_id, "phase": "start", "started_at": iso(self.to_wall(ev.t)),
                                      "ended_at": None, "summary": None}))
            else:
                out.append(("visit", {"visit_id": v.visit_id, "phase": "end",
                                      "started_at": iso(self.to_wall(v.started_t)),
                                      "ended_at": iso(self.to_wall(ev.t)), "summary": v.summary(ev.t)}))
                self.fusion.reset()
        return out
