"""Care and good-moment cues (issue 21): pure policy on the injected clock, separate from escalation alerts."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.config import parse_config
from edge.demo.scripted import blend, for_escalation
from edge.events import EventFactory, validate
from edge.policy.core import Core, Observation
from edge.policy.hints import HINTS
from edge.types import Reading


def _core(**alerts: Any) -> Core:
    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k", "counter_name": "C"}, "alerts": alerts,
                        "fusion": {"visit_start_s": 0.2, "visit_end_s": 3.0}})
    return Core(cfg, EventFactory(cfg.identity, clock=lambda: 0.0), to_wall=lambda t: 1.8e9 + t)


def _drive(core: Core, plan: list[tuple[float, np.ndarray | None]], t0: float = 0.0, dt: float = 0.25
           ) -> list[tuple[float, str, dict[str, Any]]]:
    """Feed face+voice readings of each (seconds, probabilities) step; return (t, kind, body) of every event."""
    out, t = [], t0
    for seconds, p in plan:
        end = t + seconds
        while t < end:
            for m, c in (("face", 0.8), ("voice", 0.6)):
                r = None if p is None else Reading(m, t, p, c)
                out += [(t, k, b) for k, b in core.observe(Observation(m, t, r))]
            out += [(t, k, b) for k, b in core.tick(t)]
            t += dt
    return out


def _cues(events: list[tuple[float, str, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    return [(t, b) for t, k, b in events if k == "cue"]


def test_a_low_subdued_customer_gets_one_care_cue_per_visit_after_it_held() -> None:
    core = _core()
    sad = blend(0.7, "sad")
    events = _drive(core, [(2.0, blend(0.02)), (12.0, sad), (6.0, None), (2.0, blend(0.02)), (10.0, sad)])
    cues = _cues(events)
    assert len(cues) == 2 and [b["kind"] for _, b in cues] == ["care", "care"]
    assert cues[0][1]["visit_id"] != cues[1][1]["visit_id"]  # once per visit: the second visit gets its own
    t, body = cues[0]
    assert 2.0 + 6.0 <= t < 2.0 + 6.0 + 2.5, t  # held sustain_s (6 s) after fusion settled, not before
    assert body["hint"] == {"lang": "en", "text": HINTS["en"]["care"], "key": "care", "custom": False}
    assert body["evidence"]["valence"] <= -0.3 and body["evidence"]["arousal"] <= 0.0
    factory = EventFactory(core.cfg.identity)
    validate("cue", factory.make("cue", **body))
    assert not [b for _, k, b in events if k == "alert"], "a sad customer is not an escalation"
    # the retained present state carries the cue of the visit in progress
    cur = core.current_body(False)
    assert cur["cue"] is not None and cur["cue"]["cue_id"] == cues[1][1]["cue_id"]
    validate("current", factory.make("current", **cur))


def test_no_care_cue_for_calm_agitated_brief_or_unsure_customers_or_during_an_alert() -> None:
    sad, angry = blend(0.7, "sad"), for_escalation(0.75)
    assert not _cues(_drive(_core(), [(30.0, blend(0.02))]))  # calm
    assert not _cues(_drive(_core(), [(2.0, blend(0.02)), (4.0, sad), (2.0, blend(0.02)), (4.0, sad)]))  # brief
    assert not _cues(_drive(_core(), [(2.0, blend(0.02)), (30.0, blend(0.6, "angry"))]))  # agitated: alerts
    events = _drive(_core(), [(2.0, blend(0.02)), (6.0, angry), (10.0, sad)])  # an open episode: no cue
    assert [b["level"] for _, k, b in events if k == "alert"][:2] == ["watch", "alert"]
    assert not _cues(events)
    assert not _cues(_drive(_core(care={"enabled": False}), [(2.0, blend(0.02)), (20.0, sad)]))
    unsure = _core(care={"min_confidence": 0.9})
    assert not _cues(_drive(unsure, [(2.0, blend(0.02)), (20.0, sad)]))


def test_positive_cue_is_off_by_default_and_quiet_when_on() -> None:
    happy = blend(0.8, "happy")
    assert not _cues(_drive(_core(), [(2.0, blend(0.02)), (20.0, happy)]))
    on = _core(positive={"enabled": True}, language="zh-CN")
    cues = _cues(_drive(on, [(2.0, blend(0.02)), (20.0, happy)]))
    assert [b["kind"] for _, b in cues] == ["positive"]
    assert cues[0][1]["hint"]["text"] == HINTS["zh-CN"]["positive"] and cues[0][0] >= 2.0 + 5.0
