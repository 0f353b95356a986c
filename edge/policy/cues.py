"""Care and good-moment cues: a low, subdued customer or a pleased one (pure logic, caller's clock, no I/O).

Separate from escalation alerts: at most one cue of each kind per visit, never while an alert episode is open,
shown quietly on the tablet. Settings are ``alerts.care`` and ``alerts.positive`` (read on every update).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from typing import Any

from edge.config import AlertsConfig
from edge.policy.fusion import MODALITIES, FusedState
from edge.policy.hints import hint
from edge.policy.visits import Visit
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

_HAPPY = EMOTIONS.index("happy")


class CuePolicy:
    """Turns fused states into `care` / `positive` cue bodies for the current visit."""

    def __init__(self, cfg: Callable[[], AlertsConfig], counter_name: str = "",
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        """``cfg`` returns the alert settings in force (remote config may replace them)."""
        self.cfg, self.counter_name, self.new_id = cfg, counter_name, new_id
        self._reset(None)

    def _reset(self, visit_id: str | None) -> None:
        self._visit_id = visit_id
        self._since: dict[str, float] = {}
        self._sent: dict[str, tuple[dict[str, Any], float]] = {}  # kind -> (body, when) of this visit

    def current(self) -> tuple[dict[str, Any], float] | None:
        """The latest cue of the current visit and when it was sent, or None."""
        return max(self._sent.values(), key=lambda x: x[1]) if self._sent else None

    def update(self, now: float, state: FusedState | None, visit: Visit | None, episode_open: bool
               ) -> list[dict[str, Any]]:
        """Take the fused state at ``now``; return the cue bodies it causes (none while an episode is open)."""
        if visit is None:
            self._reset(None)
            return []
        if visit.visit_id != self._visit_id:
            self._reset(visit.visit_id)
        cfg = self.cfg()
        if state is None or not math.isfinite(state.escalation):
            self._since.clear()
            return []
        care, pos = cfg.care, cfg.positive
        holds = {
            "care": (care.enabled and not episode_open and state.confidence >= care.min_confidence
                     and state.valence <= care.max_valence and state.arousal <= care.max_arousal
                     and state.escalation < care.max_escalation),
            "positive": (pos.enabled and not episode_open and state.confidence >= pos.min_confidence
                         and float(state.probs[_HAPPY]) >= pos.min_happy
                         and state.escalation < cfg.watch_threshold),
        }
        out = []
        for kind, ok in holds.items():
            if not ok:
                self._since.pop(kind, None)
                continue
            start = self._since.setdefault(kind, now)
            sustain = care.sustain_s if kind == "care" else pos.sustain_s
            if kind not in self._sent and now - start >= sustain:
                body = self._body(kind, state, now - start, visit.visit_id, cfg)
                self._sent[kind] = (body, now)
                log.info("%s cue for visit %s: valence %.2f arousal %.2f", kind, visit.visit_id, state.valence,
                         state.arousal)
                out.append(body)
        return out

    def _body(self, kind: str, state: FusedState, held: float, visit_id: str, cfg: AlertsConfig) -> dict[str, Any]:
        """A cue body valid against cue.schema.json (without the envelope)."""
        clip = lambda x: round(min(max(float(x), -1.0), 1.0), 4)  # noqa: E731
        return {
            "cue_id": self.new_id(),
            "visit_id": visit_id,
            "kind": kind,
            "evidence": {"valence": clip(state.valence), "arousal": clip(state.arousal),
                         "duration_s": round(max(held, 0.0), 3),
                         "modalities": [m for m in MODALITIES if m in state.modalities and state.modalities[m].used]},
            "hint": hint(kind, cfg.language, cfg.hints),
            "counter_name": self.counter_name,
        }
