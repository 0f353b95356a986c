"""Fusion and visits: pure logic on an injected clock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import FusionConfig
from edge.policy.fusion import Fusion, escalation_score
from edge.policy.visits import VisitTracker
from edge.types import EMOTIONS, Reading


def onehot(label: str, p: float = 0.9) -> np.ndarray:
    v = np.full(len(EMOTIONS), (1 - p) / (len(EMOTIONS) - 1))
    v[EMOTIONS.index(label)] = p
    return v


def test_no_reading_no_state() -> None:
    assert Fusion(FusionConfig()).state(10.0) is None


def test_single_spike_is_smoothed_away() -> None:
    f = Fusion(FusionConfig(half_life_s=2.0))
    for i in range(20):
        f.update(Reading("face", i * 0.125, onehot("neutral"), 0.8))
    f.update(Reading("face", 2.5, onehot("angry"), 0.8))
    s = f.state(2.5)
    assert s is not None and s.label == "neutral" and s.escalation < 0.3


def test_sustained_anger_wins_and_escalates() -> None:
    f = Fusion(FusionConfig(half_life_s=1.0))
    for i in range(40):
        f.update(Reading("face", i * 0.125, onehot("angry"), 0.8))
    s = f.state(5.0)
    assert s is not None and s.label == "angry" and s.escalation > 0.6 and s.valence < 0 < s.arousal


def test_missing_modality_lowers_confidence_and_stale_expires() -> None:
    cfg = FusionConfig(stale_after_s=4.0)
    both, face_only = Fusion(cfg), Fusion(cfg)
    for t in np.arange(0, 3, 0.25):
        both.update(Reading("face", t, onehot("happy"), 0.8))
        both.update(Reading("voice", t, onehot("happy"), 0.8))
        face_only.update(Reading("face", t, onehot("happy"), 0.8))
    sb, sf = both.state(3.0), face_only.state(3.0)
    assert sb is not None and sf is not None
    assert sf.confidence < sb.confidence
    assert not sf.modalities["voice"].used and sf.modalities["voice"].age_s is None
    assert face_only.state(3.0 + cfg.stale_after_s + 0.1) is None


def _face_and_voice(cfg: FusionConfig, face: str, voice: str, face_conf: float = 0.8) -> Fusion:
    f = Fusion(cfg, voice_gap_s=1.0)  # a voice reading every second
    for i in range(48):
        t = i * 0.125
        f.update(Reading("face", t, onehot(face), face_conf))
        if i % 8 == 0:
            f.update(Reading("voice", t, onehot(voice, 0.6), 0.2))  # an unsure voice, as real ones are
    return f


def test_calm_face_does_not_cancel_an_agitated_voice() -> None:
    on, off = _face_and_voice(FusionConfig(), "neutral", "angry"), _face_and_voice(
        FusionConfig(voice_arousal=False), "neutral", "angry")
    s_on, s_off = on.state(6.0), off.state(6.0)
    assert s_on is not None and s_off is not None
    voice_alone = escalation_score(on.tracks["voice"].probs)
    assert s_off.escalation < 0.3 < voice_alone  # averaged with a confident neutral face, the anger disappears
    assert 0.95 * voice_alone < s_on.escalation <= voice_alone  # less only the neutral face's sliver of `happy`
    assert s_on.voice_led and not s_off.voice_led
    assert s_on.confidence == s_off.confidence  # the rule moves the score, never the confidence
    assert s_on.label == s_off.label == "neutral"  # nor the published distribution


def test_smiling_face_discounts_a_loud_voice() -> None:
    neutral = _face_and_voice(FusionConfig(), "neutral", "angry").state(6.0)
    happy = _face_and_voice(FusionConfig(), "happy", "angry").state(6.0)
    half = _face_and_voice(FusionConfig(happy_face_discount=0.5), "happy", "angry").state(6.0)
    assert neutral is not None and happy is not None and half is not None
    assert happy.escalation < half.escalation < neutral.escalation


def test_voice_escalation_needs_fresh_speech() -> None:
    cfg = FusionConfig(stale_after_s=4.0)
    f = _face_and_voice(cfg, "neutral", "angry")
    fresh, stale = f.state(6.0), f.state(5.625 + cfg.stale_after_s + 0.5)
    assert fresh is not None and fresh.escalation > 0.3
    assert stale is None  # face readings stopped too: nothing is fresh, no state at all
    for i in range(48, 120):  # the face keeps coming, the customer stops talking
        f.update(Reading("face", i * 0.125, onehot("neutral"), 0.8))
    quiet = f.state(119 * 0.125)
    assert quiet is not None and not quiet.modalities["voice"].used and quiet.escalation < 0.1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["face", "voice"]), st.floats(0, 1), st.floats(0, 1),
                          st.lists(st.floats(0, 1), min_size=7, max_size=7)), min_size=1, max_size=40))
def test_fused_state_is_always_a_valid_distribution(seq: list) -> None:  # type: ignore[type-arg]
    f = Fusion(FusionConfig())
    t = 0.0
    for mod, dt, conf, probs in seq:
        t += dt
        f.update(Reading(mod, t, np.asarray(probs), conf))
        s = f.state(t)
        if s is None:
            continue
        assert np.isclose(s.probs.sum(), 1.0) and (s.probs >= 0).all()
        assert 0.0 <= s.confidence <= 1.0 and 0.0 <= s.escalation <= 1.0
        assert -1.0 <= s.valence <= 1.0 and -1.0 <= s.arousal <= 1.0


def test_escalation_orders_classes() -> None:
    assert escalation_score(onehot("angry")) > escalation_score(onehot("sad")) > escalation_score(onehot("happy"))


def test_visit_lifecycle_with_fresh_ids() -> None:
    ids = iter(["v1", "v2"])
    vt = VisitTracker(start_s=1.0, end_s=5.0, new_id=lambda: next(ids))
    assert vt.observe(0.0, face=True, speech=False) == []
    ev = vt.observe(1.0, face=True, speech=False)
    assert [e.phase for e in ev] == ["start"] and ev[0].visit.visit_id == "v1"
    vt.current.add_state(1.0, "neutral", 0.1)  # type: ignore[union-attr]
    vt.current.add_state(3.0, "angry", 0.8)  # type: ignore[union-attr]
    # face gone, but the customer keeps talking: the visit continues
    assert vt.observe(4.0, face=False, speech=True) == []
    assert vt.observe(8.9, face=False, speech=False) == []
    ev = vt.observe(9.0, face=False, speech=False)
    assert [e.phase for e in ev] == ["end"]
    summ = ev[0].visit.summary(ev[0].t)
    assert summ["duration_s"] == 4.0 and summ["peak_escalation"] == 0.8
    assert vt.current is None
    vt.observe(20.0, face=True, speech=False)
    assert vt.observe(21.0, face=True, speech=False)[0].visit.visit_id == "v2"


def test_flicker_does_not_start_a_visit() -> None:
    vt = VisitTracker(start_s=1.0, end_s=5.0)
    evs = []
    for i in range(20):
        evs += vt.observe(i * 0.3, face=(i % 2 == 0), speech=False)
    assert evs == [] and vt.current is None


def test_voice_readings_have_their_own_half_life() -> None:
    """A voice reading (a 2 s window) moves its track by its own half-life; the face keeps the frame half-life."""
    agitated = [EMOTIONS.index(e) for e in ("angry", "disgust", "fear")]
    moved = {}
    for voice_hl in (0.5, 1.0):
        f = Fusion(FusionConfig(half_life_s=1.0, voice_half_life_s=voice_hl))
        for m in ("face", "voice"):
            f.update(Reading(m, 0.0, onehot("neutral"), 1.0))
            f.update(Reading(m, 1.0, onehot("angry"), 1.0))
            moved[m, voice_hl] = float(f.tracks[m].probs[agitated].sum())
    assert moved["voice", 0.5] > moved["voice", 1.0] == moved["face", 1.0] == moved["face", 0.5]
    before, after = 3 * 0.1 / 6, 0.9 + 2 * 0.1 / 6  # agitated share of the neutral / angry readings
    assert abs(moved["voice", 0.5] - (0.25 * before + 0.75 * after)) < 1e-9  # 1 s = two half-lives


@pytest.mark.parametrize("bad", [
    ([1 / 7] * 7, float("nan")),  # a NaN confidence
    ([float("inf"), 0, 0, 0, 0, 0, 0], 0.9),  # an infinite probability
    ([0.5, 0.5], 0.9),  # the wrong number of classes
])
def test_one_non_finite_reading_is_left_out_not_blinding_the_track(bad: tuple[list[float], float]) -> None:
    """A single bad reading must not make the track NaN for the rest of the visit: later anger still counts."""
    angry = np.eye(7)[EMOTIONS.index("angry")] * 0.9 + 0.1 / 7
    fusion = Fusion(FusionConfig())
    fusion.update(Reading("face", 0.0, angry, 0.9))
    fusion.update(Reading("face", 0.1, np.asarray(bad[0]), bad[1]))
    for k in range(2, 40):
        fusion.update(Reading("face", k / 10, angry, 0.9))
    state = fusion.state(4.0)
    assert state is not None and fusion.ignored == 1
    assert np.all(np.isfinite(state.probs)) and state.escalation > 0.6 and 0 < state.confidence <= 1


def test_readings_left_out_are_counted_in_health() -> None:
    """A kiosk whose model emits bad readings says so: ``health.drops.readings_ignored``."""
    from edge.config import parse_config
    from edge.events import validate
    from edge.pipeline.analyzers import Analyzers
    from edge.pipeline.service import Service

    svc = Service(parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False}}),
                  Analyzers())
    svc.core.fusion.update(Reading("face", 0.0, np.full(7, float("nan")), 0.9))
    body = svc.health_body()
    assert body["drops"]["readings_ignored"] == 1
    validate("health", svc.factory.make("health", **body))
