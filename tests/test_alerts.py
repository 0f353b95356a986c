"""Alert policy, hints and inbound acks: pure logic on an injected clock, plus properties (hypothesis)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import AlertsConfig, ConfigError, FusionConfig, parse_config
from edge.events import EventFactory
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.policy.alerts import AckError, AlertPolicy, parse_ack
from edge.policy.core import Core, Observation
from edge.policy.fusion import FusedState, Fusion, ModalityState
from edge.policy.hints import HINTS
from edge.policy.visits import Visit
from edge.transport.mqtt import RecordingPublisher
from edge.types import EMOTIONS, Reading

CFG = parse_config({"identity": {"site_id": "s", "kiosk_id": "k", "counter_name": "Counter 3"},
                    "fusion": {"emit_interval_s": 1.0, "visit_start_s": 1.0, "visit_end_s": 3.0}})
FACTORY = EventFactory(CFG.identity, clock=lambda: 1_800_000_000.0)
DT = 0.25  # the core judges the fused state every 0.25 s


def state(t: float, e: float, conf: float = 0.4, voice: tuple[float, float] | None = None) -> FusedState:
    """A fused state with escalation ``e``; ``voice`` = (confidence, agitated share) when voice is used."""
    mods = {"face": ModalityState(True, 0.8, 0.1),
            "voice": ModalityState(voice is not None, voice[0] if voice else 0.0, 0.1 if voice else None,
                                   voice[1] if voice else 0.0)}
    return FusedState(t=t, probs=np.full(len(EMOTIONS), 1 / len(EMOTIONS)), label="neutral", valence=0.0,
                      arousal=0.0, escalation=e, confidence=conf, modalities=mods)


def new_policy(**over: Any) -> tuple[AlertPolicy, Visit]:
    ids = iter(f"a-{i}" for i in range(1000))
    return AlertPolicy(AlertsConfig(**over), "Counter 3", new_id=lambda: next(ids)), Visit("v-1", 0.0, 0.0)


def drive(policy: AlertPolicy, visit: Visit | None, escalations: list[float], t0: float = 0.0,
          dt: float = DT, **kw: Any) -> list[tuple[float, dict[str, Any]]]:
    """Feed one state per ``dt``; return (t, body) of every alert, each checked against the shipped schema."""
    out = []
    for i, e in enumerate(escalations):
        t = t0 + i * dt
        for body in policy.update(t, state(t, e, **kw), visit):
            FACTORY.make("alert", **body)
            out.append((t, body))
    return out


def levels(alerts: list[tuple[float, dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(b["level"], b["reason"]) for _, b in alerts]


def test_sustained_anger_alerts_within_three_seconds() -> None:
    policy, visit = new_policy()
    got = drive(policy, visit, [0.1] * 20 + [0.7] * 20)  # anger (escalation 0.7) from t = 5.0
    assert levels(got) == [("watch", "rising"), ("alert", "sustained")]
    (t_watch, watch), (t_alert, alert) = got
    assert 5.0 < t_watch < t_alert <= 5.0 + 3.0
    assert alert["alert_id"] == watch["alert_id"] == "a-0" and alert["visit_id"] == "v-1"
    assert alert["evidence"] == {"escalation": 0.7, "duration_s": AlertsConfig().sustain_s, "modalities": ["face"]}
    assert alert["counter_name"] == "Counter 3" and alert["hint"] == {"lang": "en", "text": HINTS["en"]["sustained"],
                                                                          "key": "sustained", "custom": False}
    assert visit.alert_raised and not visit.acknowledged


def test_alert_needs_the_watch_level_sustained_then_only_the_alert_level() -> None:
    """Sustain counts at the watch level: a slow climb alerts as soon as it reaches the alert threshold."""
    policy, visit = new_policy()  # watch 0.45, alert 0.6, sustain 1 s
    got = drive(policy, visit, [0.1] * 8 + [0.5] * 8 + [0.65] * 8)  # watch level from t=2, alert level from t=4
    assert [(t, b["level"]) for t, b in got] == [(2.5, "watch"), (4.0, "alert")]  # the watch: a fast rise
    assert got[1][1]["evidence"]["duration_s"] == 2.0  # elevated for 2 s, alert level reached just now
    policy, visit = new_policy()
    got = drive(policy, visit, [0.1] * 8 + [0.65] * 2 + [0.5] * 2 + [0.1] * 8)  # elevated for 0.75 s only
    assert [b["level"] for _, b in got] == ["watch"] and not visit.alert_raised
    policy, visit = new_policy()
    got = drive(policy, visit, [0.1] * 8 + [0.5] * 3 + [0.65] + [0.1] * 8)  # alert level before watch held 1 s
    assert [b["level"] for _, b in got] == ["watch"] and not visit.alert_raised


def test_voice_led_escalation_alerts_as_voice_agitation() -> None:
    """When the voice carried the escalation (fusion.voice_arousal), the alert says so: reason, hint, evidence."""
    policy, visit = new_policy()
    got = []
    for i in range(40):
        t = i * DT
        e = 0.1 if t < 5.0 else 0.7
        s = state(t, e, voice=(0.2, 0.8))
        got += [(t, b) for b in policy.update(t, dataclasses.replace(s, voice_led=t >= 5.0), visit)]
    assert levels(got) == [("watch", "rising"), ("alert", "voice_agitation")]
    alert = got[1][1]
    assert alert["hint"]["text"] == HINTS["en"]["voice_agitation"]
    assert alert["evidence"] == {"escalation": 0.7, "duration_s": AlertsConfig().sustain_s, "modalities": ["voice"]}


def test_no_alert_without_a_visit_or_when_disabled() -> None:
    policy, visit = new_policy()
    assert drive(policy, None, [0.9] * 40) == []
    policy.configure(enabled=False)
    assert drive(policy, visit, [0.9] * 40) == []
    assert not visit.alert_raised


def test_low_confidence_states_are_ignored() -> None:
    policy, visit = new_policy(min_confidence=0.3)
    assert drive(policy, visit, [0.9] * 40, conf=0.29) == []
    assert levels(drive(policy, visit, [0.9] * 12, t0=20.0, conf=0.31))[-1] == ("alert", "sustained")


def test_voice_agitation_trigger_when_switched_on() -> None:
    """Off by default (fusion.voice_arousal carries the voice into the escalation); on, it alerts by itself."""
    assert drive(*new_policy(), [0.3] * 40, voice=(0.6, 0.8)) == []
    policy, visit = new_policy(voice_agitation_threshold=0.7, sustain_s=2.0)
    got = drive(policy, visit, [0.3] * 12, voice=(0.6, 0.8))
    assert levels(got) == [("alert", "voice_agitation")] and got[0][0] == 2.0
    assert got[0][1]["evidence"]["modalities"] == ["voice"]
    unsure, visit2 = new_policy(voice_agitation_threshold=0.7)
    assert drive(unsure, visit2, [0.3] * 40, voice=(0.3, 0.95)) == []  # below voice_min_confidence


def test_recovered_after_calm_reuses_the_id_and_marks_the_visit() -> None:
    policy, visit = new_policy(recover_s=5.0)
    got = drive(policy, visit, [0.8] * 12 + [0.2] * 30)
    assert levels(got) == [("alert", "sustained"), ("recovered", "recovered")]
    assert got[1][1]["alert_id"] == got[0][1]["alert_id"]
    assert got[1][0] - 3.0 == pytest.approx(5.0)  # calm from t = 3.0, recovered 5 s later
    assert got[1][1]["hint"]["text"] == HINTS["en"]["recovered"]
    summary = visit.summary(20.0)
    assert summary["alert_raised"] and summary["calmed_down"] and not summary["acknowledged"]


def test_hysteresis_no_flapping_around_the_thresholds() -> None:
    policy, visit = new_policy(recover_s=5.0, cooldown_s=3600)
    got = drive(policy, visit, [0.8] * 12)  # alert
    # escalation dips under the watch and alert thresholds, but never stays under release for recover_s
    wobble = ([0.25] * 8 + [0.5] * 4) * 10  # 2 s calm, 1 s elevated, for 30 s
    got += drive(policy, visit, wobble, t0=3.0)
    # under the watch threshold but above release: not calm yet, however long it lasts
    got += drive(policy, visit, [0.4] * 40, t0=33.0)
    assert levels(got) == [("alert", "sustained")]
    got += drive(policy, visit, [0.2] * 24, t0=43.0)
    assert levels(got)[-1] == ("recovered", "recovered")
    # oscillating around the watch threshold after recovery starts nothing (never sustained, no steep rise)
    assert drive(policy, visit, [0.44, 0.46] * 60, t0=50.0) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.31, 1.0), min_size=1, max_size=120))
def test_above_release_means_one_episode_and_no_recovery(tail: list[float]) -> None:
    policy, visit = new_policy(cooldown_s=3600)
    got = drive(policy, visit, [0.8] * 12 + tail)
    assert {b["alert_id"] for _, b in got} == {"a-0"}
    assert [lv for lv, _ in levels(got)] == ["alert"]


def test_ack_stops_reminders_and_marks_the_visit() -> None:
    angry = [0.8] * 4 * 100  # 100 s of sustained anger
    unacked, v1 = new_policy(cooldown_s=30, sustain_s=2.0)
    reminders = drive(unacked, v1, angry)
    assert [t for t, _ in reminders] == [2.0, 32.0, 62.0, 92.0]
    assert {b["hint"]["text"] for _, b in reminders[1:]} == {HINTS["en"]["repeat"]}
    acked, v2 = new_policy(cooldown_s=30, sustain_s=2.0)
    first = drive(acked, v2, angry[:12])
    assert not v2.acknowledged
    assert not acked.acknowledge("no-such-alert", 3.0) and not v2.acknowledged
    assert acked.acknowledge(first[0][1]["alert_id"], 3.0)
    assert v2.acknowledged and v2.summary(10.0)["acknowledged"]
    assert drive(acked, v2, angry[12:], t0=3.0) == []
    # a new visit: the old alert id means nothing any more
    assert drive(acked, Visit("v-2", 200.0, 200.0), [0.1], t0=200.0) == []
    assert not acked.acknowledge(first[0][1]["alert_id"], 201.0)


def test_an_ack_of_the_watch_that_arrives_after_the_alert_leaves_the_alert_open() -> None:
    """Staff pressed Acknowledge on the watch card; the episode became an alert before the ack arrived, and the ack
    silenced the alert (no reminder, the tablet showed it acknowledged): an ack says which level it saw."""
    policy, visit = new_policy(cooldown_s=30)
    got = drive(policy, visit, [0.1] * 20 + [0.7] * 20)
    assert levels(got) == [("watch", "rising"), ("alert", "sustained")]
    alert_id = got[0][1]["alert_id"]
    assert policy.acknowledge(alert_id, 10.0, level="watch")  # recorded (the visit saw an ack) ...
    assert policy.episode() is not None and not policy.episode()[2]  # type: ignore[index]  # ... alert still open
    reminders = drive(policy, visit, [0.7] * 140, t0=10.0)
    assert reminders and reminders[0][1]["level"] == "alert"  # it reminds as an unacknowledged alert does
    assert policy.acknowledge(alert_id, 50.0, level="alert") and policy.episode()[2]  # type: ignore[index]
    assert parse_ack(b'{"alert_id": "a-1", "level": "watch"}').level == "watch"
    with pytest.raises(AckError, match=r"\$\.level"):
        parse_ack(b'{"alert_id": "a-1", "level": "recovered"}')


def test_cooldown_limits_a_reescalation_to_a_watch() -> None:
    policy, visit = new_policy(cooldown_s=60, recover_s=2.0)
    got = drive(policy, visit, [0.8] * 12 + [0.1] * 12 + [0.8] * 20)
    assert levels(got) == [("alert", "sustained"), ("recovered", "recovered"), ("watch", "rising")]
    assert got[2][1]["alert_id"] != got[0][1]["alert_id"]
    assert visit.calmed is None  # the new episode is still open: no verdict yet


def test_thresholds_changed_at_run_time_take_effect() -> None:
    policy, visit = new_policy()
    got = drive(policy, visit, [0.55] * 40)
    assert levels(got) == [("watch", "sustained")]  # 0.55 is under the default alert threshold
    policy.configure(alert_threshold=0.5)
    got = drive(policy, visit, [0.55] * 12, t0=10.0)
    assert levels(got) == [("alert", "sustained")] and got[0][0] <= 10.0 + 2.0
    strict, v2 = new_policy()
    strict.configure(watch_threshold=0.9, alert_threshold=0.95)
    assert drive(strict, v2, [0.85] * 40) == []
    strict.cfg = AlertsConfig(sustain_s=1.0)  # replacing the whole section works too
    assert levels(drive(strict, v2, [0.85] * 8, t0=10.0))[-1] == ("alert", "sustained")
    with pytest.raises(ValueError, match="release_threshold < watch_threshold"):
        strict.configure(release_threshold=0.7)
    assert strict.cfg.release_threshold == 0.3  # a rejected change changes nothing


def test_config_section_validates_order_and_hints() -> None:
    with pytest.raises(ConfigError, match=r"alerts: .*release_threshold < watch_threshold"):
        parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "alerts": {"release_threshold": 0.5}})
    with pytest.raises(ConfigError, match=r"alerts\.hints\.fr"):
        parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "alerts": {"hints": {"fr": {"watch": "x"}}}})
    for name, field in AlertsConfig.model_fields.items():
        assert field.description, name
    policy, visit = new_policy(language="zh-CN", hints={"zh-CN": {"sustained": "请先安抚顾客。"}})
    got = drive(policy, visit, [0.8] * 12 + [0.1] * 24)
    assert [b["hint"] for _, b in got] == [{"lang": "zh-CN", "text": "请先安抚顾客。", "key": "sustained",
                                            "custom": True},
                                           {"lang": "zh-CN", "text": HINTS["zh-CN"]["recovered"], "key": "recovered",
                                            "custom": False}]
    assert set(HINTS["en"]) == set(HINTS["zh-CN"])


@settings(max_examples=150, deadline=None)
@given(base=st.lists(st.floats(0.0, 0.449), min_size=2, max_size=60), at=st.integers(0, 59),
       spike=st.floats(0.0, 1.0), voice=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
       dt=st.floats(0.05, 2.0))
def test_no_alert_from_a_single_spike(base: list[float], at: int, spike: float, voice: tuple[float, float],
                                      dt: float) -> None:
    policy, visit = new_policy(voice_agitation_threshold=0.7)  # with the optional voice trigger on
    at = at % len(base)
    for i, e in enumerate(base):
        s = state(i * dt, spike, voice=voice) if i == at else state(i * dt, e, voice=(0.9, 0.1))
        assert policy.update(i * dt, s, visit) == []
    assert not visit.alert_raised


# A segment: the same state repeated n times, dt apart, so that sustained runs (and their breaks) are common.
SEGMENT = st.tuples(st.integers(1, 30), st.floats(0.0, 1.5), st.floats(0.0, 1.0), st.floats(0.0, 1.0),
                    st.none() | st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(SEGMENT, max_size=40), st.floats(1.0, 30.0), st.floats(0.1, 5.0))
def test_at_most_one_alert_per_cooldown_whatever_the_input(segments: list[Any], cooldown: float,
                                                           sustain: float) -> None:
    policy, visit = new_policy(cooldown_s=cooldown, sustain_s=sustain, recover_s=sustain, voice_agitation_threshold=0.7)
    t = 0.0
    alert_times: list[float] = []
    recovered: set[str] = set()
    last_level: dict[str, str] = {}
    for n, dt, e, conf, voice, present, ack in segments:
        for _ in range(n):
            t += dt
            for body in policy.update(t, state(t, e, conf, voice) if present else None, visit):
                FACTORY.make("alert", **body)
                aid = body["alert_id"]
                assert aid not in recovered, "an episode continued after its recovery"
                if body["level"] == "alert":
                    alert_times.append(t)
                elif body["level"] == "recovered":
                    recovered.add(aid)
                    assert aid in last_level
                else:
                    assert last_level.get(aid) != "alert", "an alert went back to watch"
                last_level[aid] = body["level"]
        if ack and policy.active:
            assert policy.acknowledge(policy.active, t) and visit.acknowledged
    assert all(b - a >= cooldown for a, b in zip(alert_times, alert_times[1:], strict=False))
    assert visit.alert_raised == bool(alert_times)


def onehot(label: str, p: float = 0.9) -> np.ndarray:
    v = np.full(len(EMOTIONS), (1 - p) / (len(EMOTIONS) - 1))
    v[EMOTIONS.index(label)] = p
    return v


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["face", "voice"]), st.floats(0, 2), st.floats(0, 1),
                          st.lists(st.floats(0, 1), min_size=7, max_size=7)), min_size=1, max_size=40),
       st.sampled_from(["face", "voice"]))
def test_a_missing_modality_never_raises_confidence(seq: list[Any], dropped: str) -> None:
    both, one = Fusion(FusionConfig()), Fusion(FusionConfig())
    t = 0.0
    for mod, dt, conf, probs in seq:
        t += dt
        r = Reading(mod, t, np.asarray(probs), conf)
        both.update(r)
        if mod != dropped:
            one.update(r)
        sb, so = both.state(t), one.state(t)
        if so is not None:
            assert sb is not None and so.confidence <= sb.confidence + 1e-9
            assert not so.modalities[dropped].used


def face(t: float, label: str | None, conf: float = 0.75) -> Observation:
    p = np.full(len(EMOTIONS), 0.02)
    if label is not None:
        p[EMOTIONS.index(label)] = 0.88
    return Observation("face", t, None if label is None else Reading("face", t, p, conf))


def run_core(core: Core, label_at: Any, until: float, acks: dict[float, str] | None = None) -> list[Any]:
    """Drive the core with 8 face readings per second; return (t, kind, body) of every event."""
    out: list[Any] = []
    t = 0.0
    while t <= until:
        if acks and t in acks:
            alert_ids = [b["alert_id"] for _, k, b in out if k == "alert"]
            assert core.acknowledge(alert_ids[-1] if acks[t] == "last" else acks[t], t)
        out += [(t, kind, body) for kind, body in core.observe(face(t, label_at(t))) + core.tick(t)]
        t = round(t + 0.125, 3)
    for _, kind, body in out:
        FACTORY.make(kind, **body)
    return out


def test_core_emits_alerts_and_the_visit_summary_tells_the_story() -> None:
    core = Core(CFG, FACTORY, to_wall=lambda t: 1_800_000_000.0 + t)
    events = run_core(core, lambda t: "neutral" if t < 5 or 20 <= t < 40 else "angry" if t < 20 else None,
                      until=50.0, acks={18.0: "last"})
    alerts = [(t, b) for t, k, b in events if k == "alert"]
    assert [(a["level"], a["reason"]) for _, a in alerts][-2:] == [("alert", "sustained"), ("recovered", "recovered")]
    assert len({a["alert_id"] for _, a in alerts}) == 1
    # with default settings the alert follows the fused escalation passing 0.6 within 3 s
    crossed = next(t for t, k, b in events if k == "emotion" and b["escalation"] >= 0.6)
    t_alert = next(t for t, a in alerts if a["level"] == "alert")
    assert t_alert - crossed <= 3.0
    end = next(b for _, k, b in events if k == "visit" and b["phase"] == "end")
    assert end["summary"]["alert_raised"] and end["summary"]["acknowledged"] and end["summary"]["calmed_down"]
    assert end["visit_id"] == alerts[0][1]["visit_id"]


def test_core_neutral_and_happy_with_noise_and_spikes_never_alert() -> None:
    rng = np.random.default_rng(5)
    core = Core(CFG, FACTORY, to_wall=lambda t: 1_800_000_000.0 + t)
    out, t = [], 0.0
    while t < 600.0:  # 10 minutes at 8 fps, a one-frame angry spike every ~5 s
        label = "angry" if rng.random() < 0.025 else ("neutral" if (t // 30) % 2 == 0 else "happy")
        p = rng.dirichlet(np.ones(len(EMOTIONS))) * 0.3 + onehot(label) * 0.7
        out += core.observe(Observation("face", t, Reading("face", t, p, float(rng.uniform(0.5, 0.9)))))
        out += core.tick(t)
        t = round(t + 0.125, 3)
    assert [b for k, b in out if k == "emotion"], "the scenario produced no states"
    assert [b for k, b in out if k == "alert"] == []


# --- inbound acks --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "not JSON"), (b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "is not of type 'object'"),
    (b'{"alert_id": 5}', "$.alert_id"), (b'{"alert_id": ""}', "$.alert_id"), (b'{}', "'alert_id' is a required"),
    (b'{"alert_id": "a-1", "who": "Bob"}', "Additional properties"), (b'{"alert_id": "a-1", "by": 3}', "$.by"),
    (b'{"alert_id": NaN}', "not JSON"), (json.dumps({"alert_id": "a" * 2000}).encode(), "too large"),
    (b'{"alert_id": "a-1", "alert_id": "b-2"}', "key 'alert_id' appears twice"),  # which one: not guessed
])
def test_malformed_acks_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(AckError) as exc:
        parse_ack(payload)
    assert reason in str(exc.value)


def test_valid_ack() -> None:
    assert parse_ack(b'{"alert_id": "a-1", "by": "tablet"}').by == "tablet"
    assert parse_ack(b'{"alert_id": "0199b0ba-1dd5-4328-978f-b78f853ca60b"}').by is None


def _service_with_alert() -> tuple[Service, str]:
    svc = Service(CFG, Analyzers(), publisher=RecordingPublisher(strict=True), clock=lambda: 0.0)
    visit = Visit("v-1", 0.0, 0.0)
    svc.core.visits.current = visit
    alert = drive(svc.core.alerts, visit, [0.8] * 12)[0][1]
    return svc, alert["alert_id"]


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["alert_id", "by", "ts", "x"]) | st.text(max_size=5), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | JSONISH.map(lambda v: json.dumps(v).encode()))
def test_malformed_ack_bytes_never_raise_and_change_nothing(payload: bytes) -> None:
    svc, alert_id = _service_with_alert()
    try:
        ack = parse_ack(payload)
    except AckError:
        ack = None
    svc.handle_message(svc.ack_topic, payload)  # must not raise, whatever the bytes
    assert svc.acks.qsize() == (0 if ack is None else 1)
    svc.process_acks(0.0)
    visit = svc.core.visits.current
    assert visit is not None
    assert visit.acknowledged == (ack is not None and ack.alert_id == alert_id)
    assert svc.errors["ack"] == (ack is None)


def test_service_hands_a_valid_ack_to_the_core() -> None:
    svc, alert_id = _service_with_alert()
    svc.handle_message("edge-emotion/s/k/other", json.dumps({"alert_id": alert_id}).encode())
    svc.handle_message(svc.ack_topic, json.dumps({"alert_id": "unknown"}).encode())
    svc.process_acks(0.0)
    assert svc.core.visits.current is not None and not svc.core.visits.current.acknowledged
    svc.handle_message(svc.ack_topic, json.dumps({"alert_id": alert_id, "by": "tablet"}).encode())
    svc.process_acks(0.0)
    assert svc.core.visits.current.acknowledged
    assert svc.ack_topic == "edge-emotion/s/k/ack"


def test_voice_agitation_behind_a_calm_face_does_not_recover_at_once_or_repeat() -> None:
    """An angry voice behind a smiling face keeps the fused level below release: the episode it raises must not be
    'recovered' in the same instant (calm counts from the episode's start, not while the voice trigger holds), nor
    open again every judge step."""
    import itertools

    ids = (f"id{i}" for i in itertools.count())
    policy = AlertPolicy(AlertsConfig(voice_agitation_threshold=0.5), new_id=lambda: next(ids))
    fusion, visit = Fusion(FusionConfig()), Visit("v1", 0.0, 0.0)
    smile = np.eye(7)[EMOTIONS.index("happy")] * 0.9 + 0.1 / 7
    angry = np.eye(7)[EMOTIONS.index("angry")] * 0.8 + 0.2 / 7
    sent = []
    for step in range(48):
        t = step * 0.25
        fusion.update(Reading("face", t, smile, 0.9))
        if t >= 6.0:
            fusion.update(Reading("voice", t, angry, 0.5))
        sent += [(t, b["level"], b["alert_id"]) for b in policy.update(t, fusion.state(t), visit)]
    assert [(level, aid) for _, level, aid in sent] == [("alert", "id0")], sent


def test_one_dip_of_an_agitated_voice_is_not_recovery() -> None:
    """A calm face keeps the fused level low; the voice trigger raised the alert. One 0.25 s dip of the voice under
    its threshold must not close the episode (alert → recovered → a new watch two seconds later): recovery needs
    recover_s of calm after the voice trigger last held."""
    policy, visit = new_policy(voice_agitation_threshold=0.7, sustain_s=2.0, recover_s=5.0)
    got = []
    voices = [(0.9, 0.9)] * 80 + [(0.9, 0.65)] + [(0.9, 0.9)] * 20 + [(0.9, 0.1)] * 40
    for i, v in enumerate(voices):
        t = i * DT
        for body in policy.update(t, state(t, 0.1, voice=v), visit):
            FACTORY.make("alert", **body)
            got.append((t, body))
    assert levels(got) == [("alert", "voice_agitation"), ("recovered", "recovered")], levels(got)
    assert got[1][0] == pytest.approx(100 * DT + 5.0)  # 5 s after the voice trigger last held


def _probs(**kw: float) -> np.ndarray:
    p = np.zeros(len(EMOTIONS))
    for k, v in kw.items():
        p[EMOTIONS.index(k)] = v
    rest = [i for i, e in enumerate(EMOTIONS) if e not in kw]
    p[rest] = (1.0 - p.sum()) / len(rest)
    return p


def _shout(face_during_voice: bool, voice_times: list[float], voice_conf: float = 0.286) -> list[tuple[str, str]]:
    """A visit behind a calm, confident face (on view throughout, or lost from 10 s on); angry voice readings at
    ``voice_times``; the alert levels and reasons the core sends."""
    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}})  # default visit end: the face may turn away
    core = Core(cfg, FACTORY, to_wall=lambda t: 1.8e9 + t)
    out: list[tuple[str, Any]] = []
    t, voices = 0.0, set(voice_times)
    while t < 40:
        obs = [Observation("face", t, Reading("face", t, _probs(neutral=0.9), 0.8)
                           if t < 10 or face_during_voice else None)]
        if t in voices:
            obs.append(Observation("voice", t, Reading("voice", t, _probs(angry=0.6), voice_conf)))
        for o in obs:
            out += core.observe(o)
        out += core.tick(t)
        t = round(t + 0.125, 6)
    return [(b["level"], b["reason"]) for k, b in out if k == "alert"]


def test_a_shouting_voice_alerts_whether_or_not_the_face_is_on_view() -> None:
    """The same voice behind a calm face and with the face turned away: both alert, as voice agitation (the fused
    confidence, out of both modalities, halved the voice alone below the alert policy's minimum)."""
    shouting = [15 + 0.25 * i for i in range(60)]  # the face is stale by then, the visit still open
    assert ("alert", "voice_agitation") in _shout(True, shouting)
    assert ("alert", "voice_agitation") in _shout(False, shouting)


def test_one_unsure_voice_reading_does_not_hold_an_alert_up_on_its_own() -> None:
    """A single angry reading was counted whole for the 4 s until it went stale, long enough to alert; it now fades
    once no new reading followed within a hop."""
    assert ("alert", "voice_agitation") not in _shout(True, [10.0], voice_conf=0.15)
