"""Staff alert policy: a visit's fused states become watch/alert/recovered bodies (pure logic, caller's clock)."""

from __future__ import annotations

import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config import AlertsConfig
from edge.events import SchemaError, validate_inbound
from edge.events.inbound import InboundJsonError, decode_json
from edge.policy.fusion import MODALITIES, FusedState
from edge.policy.hints import hint, hint_key
from edge.policy.visits import Visit

log = logging.getLogger(__name__)

ACK_MAX_BYTES = 1024  # an ack is ~80 bytes; anything much larger is not one


class AckError(ValueError):
    """An inbound ack message is malformed; the message says why."""


@dataclass(frozen=True)
class Ack:
    """A staff acknowledgement of one alert, received from a tablet."""

    alert_id: str
    by: str | None = None
    level: str | None = None  # the level the acknowledged card showed (watch/alert); None: whatever it is now



def parse_ack(data: bytes) -> Ack:
    """Parse and strictly validate an ack payload (``{"alert_id": ..., "by": ...}``); raise AckError only."""
    if len(data) > ACK_MAX_BYTES:
        raise AckError(f"too large ({len(data)} bytes > {ACK_MAX_BYTES})")
    try:
        obj = decode_json(data)
    except InboundJsonError as exc:
        raise AckError(str(exc)) from None
    try:
        validate_inbound("ack", obj)
    except SchemaError as exc:
        raise AckError("; ".join(f"{path}: {msg}" for path, msg in exc.errors)[:300]) from None
    return Ack(alert_id=obj["alert_id"], by=obj.get("by"), level=obj.get("level"))


@dataclass
class _Episode:
    """One escalation episode of a visit: a watch, possibly upgraded to an alert, until it recovers."""

    alert_id: str
    level: str  # "watch" | "alert"
    since: float  # pipeline time of its first message
    acknowledged: bool = False
    last: dict[str, Any] | None = None  # the latest watch/alert body sent for it (the tablet's card)


def _voice_carries(state: FusedState) -> bool:
    """Whether the escalation is the voice's: above the fused estimate (``voice_led``) or the only fresh modality."""
    voice, face = state.modalities.get("voice"), state.modalities.get("face")
    return voice is not None and voice.used and (state.voice_led or face is None or not face.used)


def _confidence(state: FusedState) -> float:
    """How sure a state is: the voice's own (fresh) confidence when the voice carries the escalation, else the
    fused one (out of every configured modality: a face out of view halved a shouting voice's figure, and the
    same voice alerted behind a calm face but not with the face turned away)."""
    return max(state.confidence, state.modalities["voice"].confidence) if _voice_carries(state) else state.confidence


class AlertPolicy:
    """Turns fused states into staff alerts: sustained/rising/voice triggers, hysteresis, cooldown, recovery.

    Reads ``self.cfg`` on every update, so thresholds changed at run time (``configure``, or assigning a new
    AlertsConfig to ``cfg``) take effect on the next state. All times are on the caller's pipeline clock.
    """

    def __init__(self, cfg: AlertsConfig, counter_name: str = "",
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        """Start with no visit; ``new_id`` makes alert ids (random UUID4 by default)."""
        self.cfg = cfg
        self.counter_name = counter_name
        self.new_id = new_id
        self._reset(None)

    def configure(self, **changes: Any) -> AlertsConfig:
        """Change thresholds at run time, validated as a whole (a bad change raises and changes nothing)."""
        self.cfg = AlertsConfig.model_validate({**self.cfg.model_dump(), **changes})
        return self.cfg

    def _reset(self, visit: Visit | None) -> None:
        self._visit = visit
        self._since: dict[str, float] = {}  # trigger name -> start of its current continuous run
        self._history: deque[tuple[float, float]] = deque()  # (t, escalation) within rise_window_s
        self._episode: _Episode | None = None
        self._last_alert_t: float | None = None  # last `alert`-level message (cooldown)
        self._sent: dict[str, float] = {}  # alert ids of this visit -> when first sent
        self._voice_last = -math.inf  # when the voice trigger last held (recovery counts calm only after it)

    @property
    def active(self) -> str | None:
        """Alert id of the current episode, if one is open."""
        return self._episode.alert_id if self._episode else None

    def episode(self) -> tuple[dict[str, Any], float, bool] | None:
        """The open episode as (its latest watch/alert body, when it began, acknowledged), or None."""
        ep = self._episode
        if ep is None or ep.last is None:
            return None
        return ep.last, ep.since, ep.acknowledged

    def _held(self, name: str, now: float) -> float:
        """How long trigger ``name`` has held continuously (-1 when it does not hold now)."""
        since = self._since.get(name)
        return -1.0 if since is None else now - since

    def _track(self, now: float, state: FusedState) -> None:
        """Update the continuous runs of every trigger condition with one usable state."""
        cfg, e = self.cfg, float(state.escalation)
        self._history.append((now, e))
        while self._history and self._history[0][0] < now - cfg.rise_window_s:
            self._history.popleft()
        rise = e - min(x for _, x in self._history)
        voice = state.modalities.get("voice")
        conditions = {
            "watch": e >= cfg.watch_threshold,
            "alert": e >= cfg.alert_threshold,
            "rising": e >= cfg.watch_threshold and rise >= cfg.rise_delta,
            "voice": bool(cfg.voice_agitation_threshold is not None and voice is not None and voice.used
                          and voice.confidence >= cfg.voice_min_confidence
                          and voice.agitated >= cfg.voice_agitation_threshold),
            "calm": e < cfg.release_threshold,
        }
        if conditions["voice"]:
            self._voice_last = now
        for name, holds in conditions.items():
            if holds:
                self._since.setdefault(name, now)
            else:
                self._since.pop(name, None)

    def update(self, now: float, state: FusedState | None, visit: Visit | None) -> list[dict[str, Any]]:
        """Take the fused state at ``now`` for the current visit; return the alert bodies it causes."""
        cfg = self.cfg
        if visit is None:
            self._reset(None)
            return []
        if self._visit is None or visit.visit_id != self._visit.visit_id:
            self._reset(visit)
        if (not cfg.enabled or state is None or not _confidence(state) >= cfg.min_confidence
                or not math.isfinite(state.escalation)):
            self._since.clear()  # off, or too unsure: evidence of neither escalation nor calm
            self._history.clear()
            return []
        self._track(now, state)
        held = {name: self._held(name, now) for name in ("watch", "alert", "rising", "voice", "calm")}
        # Sustained: at or above the watch level for sustain_s; the alert level need only hold alert_hold_s (default
        # 0: reaching it): the state is already smoothed, and holding both levels in turn only delayed alerts.
        alert_reason = ("sustained" if held["alert"] >= cfg.alert_hold_s and held["watch"] >= cfg.sustain_s
                        else "voice_agitation" if held["voice"] >= cfg.sustain_s else None)
        if alert_reason == "sustained" and _voice_carries(state):
            alert_reason = "voice_agitation"  # the voice carried it: say so, with the raised-voice hint
        watch_reason = ("rising" if held["rising"] >= cfg.rise_hold_s
                        else "sustained" if held["watch"] >= cfg.sustain_s else alert_reason)
        may_alert = self._last_alert_t is None or now - self._last_alert_t >= cfg.cooldown_s
        ep = self._episode
        out: list[dict[str, Any]] = []
        if ep is None:
            if watch_reason is None:
                return out
            ep = self._episode = _Episode(self.new_id(), "watch", now)
            visit.calmed = None  # a new episode: whether it calms down is open again
            if alert_reason is not None and may_alert:
                out.append(self._raise(ep, now, state, alert_reason, held))
            else:
                out.append(self._body(ep, "watch", watch_reason, state, held, now))
        elif alert_reason is not None and may_alert:
            reminder = ep.level == "alert"
            if not reminder or (cfg.remind and not ep.acknowledged):
                out.append(self._raise(ep, now, state, alert_reason, held, reminder))
        # Calm counts from the episode's start (a calm run that began before it is not recovery) and from the last
        # moment the voice trigger held (an agitated voice behind a smiling face keeps the fused level low; one dip
        # of the voice under its threshold is not recovery).
        calm_for = (min(held["calm"], now - ep.since, now - self._voice_last)
                    if ep is not None and held["calm"] >= 0 else -1.0)
        if ep is not None and calm_for >= cfg.recover_s and held["voice"] < 0:
            out.append(self._body(ep, "recovered", "recovered", state, held, now))
            visit.calmed = True
            self._episode = None
        return out

    def _raise(self, ep: _Episode, now: float, state: FusedState, reason: str, held: dict[str, float],
               reminder: bool = False) -> dict[str, Any]:
        """Escalate ``ep`` to (or remind of) an `alert`: counts for the cooldown and marks the visit."""
        ep.level = "alert"
        if not reminder:
            ep.acknowledged = False  # a new level needs its own acknowledgement (the tablet resets its button)
        self._last_alert_t = now
        assert self._visit is not None
        self._visit.alert_raised = True
        log.info("alert %s (%s%s) for visit %s: escalation %.2f", ep.alert_id, reason,
                 ", reminder" if reminder else "", self._visit.visit_id, state.escalation)
        return self._body(ep, "alert", reason, state, held, now, reminder)

    def _body(self, ep: _Episode, level: str, reason: str, state: FusedState, held: dict[str, float], now: float,
              reminder: bool = False) -> dict[str, Any]:
        """An alert body valid against alert.schema.json (without the envelope)."""
        assert self._visit is not None
        self._sent.setdefault(ep.alert_id, now)
        key = {"sustained": "watch", "voice_agitation": "voice" if held["voice"] >= 0 else "watch",
               "rising": "rising", "recovered": "calm"}[reason]
        mods = ["voice"] if reason == "voice_agitation" else [m for m in MODALITIES
                                                             if m in state.modalities and state.modalities[m].used]
        body = {
            "alert_id": ep.alert_id,
            "visit_id": self._visit.visit_id,
            "level": level,
            "reason": reason,
            "evidence": {"escalation": round(min(max(float(state.escalation), 0.0), 1.0), 4),
                         "duration_s": round(max(held[key], 0.0), 3), "modalities": mods},
            "hint": hint(hint_key(level, reason, reminder), self.cfg.language, self.cfg.hints),
            "counter_name": self.counter_name,
        }
        if level != "recovered":
            ep.last = body
        return body

    def acknowledge(self, alert_id: str, now: float, level: str | None = None) -> bool:
        """Staff acknowledged ``alert_id`` (at ``level``, the card's, when given): mark the visit, stop reminders;
        False if not an alert of this visit. An ack of the ``watch`` arriving after the episode became an ``alert``
        is recorded for the visit but leaves the alert unacknowledged (it rings and reminds as one)."""
        if self._visit is None or alert_id not in self._sent:
            return False
        self._visit.acknowledged = True
        ep = self._episode
        if ep is not None and ep.alert_id == alert_id and level == "watch" and ep.level == "alert":
            log.info("alert %s: an ack of its watch arrived after it became an alert; the alert stays "
                     "unacknowledged", alert_id)
            return True
        if ep is not None and ep.alert_id == alert_id:
            ep.acknowledged = True
        log.info("alert %s acknowledged after %.1f s", alert_id, now - self._sent[alert_id])
        return True
