"""Staff pause / opt-out: over a real broker the workers analyse nothing and no emotion or alert leaves."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge.config import parse_config
from edge.demo.media import make_demo
from edge.events import validate
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.privacy.pause import PauseError, parse_pause
from edge.transport.mqtt import RecordingPublisher
from edge.types import EMOTIONS, Frame, Reading
from edge.voice.features import HOP, SAMPLE_RATE

ANGRY = np.full(len(EMOTIONS), 0.02)
ANGRY[EMOTIONS.index("angry")] = 0.88


class SpyFace:
    """Stands in for FaceAnalyzer: counts the frames it is given and reports an angry customer."""

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, frame: Frame) -> Reading:
        self.calls += 1
        return Reading("face", frame.t, ANGRY.copy(), 0.8)


class SpyVoice:
    """Stands in for VoiceAnalyzer: counts the windows it is given."""

    window_s = 1.0

    def __init__(self) -> None:
        self.calls = 0
        self.windows: list[tuple[int, int | None]] = []  # (samples, stream position just after them)

    def analyze(self, samples: np.ndarray, t: float, end: int | None = None) -> Reading:
        self.calls += 1
        self.windows.append((samples.size, end))
        return Reading("voice", t, ANGRY.copy(), 0.6)


def _cfg(**over: Any):  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {
        "identity": {"site_id": "site-p", "kiosk_id": "kiosk-p", "counter_name": "Counter P"},
        "fusion": {"emit_interval_s": 0.2, "visit_start_s": 0.2, "visit_end_s": 5.0},
        "analysis": {"face_fps": 10.0, "voice_hop_s": 0.3},
        "mqtt": {"health_interval_s": 60.0, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_parse_pause_is_strict() -> None:
    assert parse_pause(b'{"action": "pause", "by": "tablet"}').action == "pause"
    assert parse_pause(b'{"action": "resume"}').by is None
    for bad in (b'{"action": "stop"}', b'{"action": "pause", "extra": 1}', b"{}", b"not json", b"\xff",
                b'{"action": "pause", "by": 7}', b'{"action": NaN}', b" " * 2000):
        with pytest.raises(PauseError):
            parse_pause(bad)


def test_pause_limit_and_status() -> None:
    cfg = _cfg(privacy={"pause_max_s": 30.0})
    pub = RecordingPublisher(strict=True)
    svc = Service(cfg, Analyzers(), publisher=pub)
    svc.handle_message(svc.pause_topic, b'{"action": "pause"}')
    svc.handle_message(svc.pause_topic, b'{"action": "sleep"}')
    svc.process_pauses(100.0)
    assert svc.paused.is_set() and svc.errors["pause"] == 1
    svc.process_pauses(129.0)
    assert svc.paused.is_set()
    svc.process_pauses(130.0)  # privacy.pause_max_s reached
    assert not svc.paused.is_set()
    status = pub.payloads("status")
    assert [s["paused"] for s in status] == [True, False]
    assert "analysis: paused by staff" in status[0]["degraded"] and status[1]["degraded"] == []
    assert {s["privacy_profile"] for s in status} == {"custom"}


def test_pause_and_resume_over_a_real_broker(mosquitto: Any, subscribe: Any, tmp_path: Path) -> None:
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    cfg = _cfg(camera={"source": str(video), "loop": True}, microphone={"source": str(audio), "loop": True},
               mqtt={"host": mosquitto.host, "port": mosquitto.port})
    face, voice = SpyFace(), SpyVoice()
    svc = Service(cfg, Analyzers(face=face, voice=voice))  # type: ignore[arg-type]
    sub = subscribe(mosquitto, "edge-emotion/site-p/kiosk-p/#")
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    pause_topic = "edge-emotion/site-p/kiosk-p/pause"
    try:
        sub.wait_for(lambda m: m.topic.endswith("/emotion"), timeout=10)
        _until(lambda: face.calls > 0 and voice.calls > 0)
        online = json.loads(sub.wait_for(lambda m: m.topic.endswith("/status")).payload)
        assert online["paused"] is False and online["privacy_profile"] == "custom"
        sub.client.publish(pause_topic, b'{"action": "hold"}', qos=1)  # malformed: counted, nothing changes
        sub.client.publish(pause_topic, b'{"action": "pause", "by": "tablet"}', qos=1)
        paused = sub.wait_for(lambda m: m.topic.endswith("/status") and b'"paused":true' in m.payload, timeout=5)
        assert svc.errors["pause"] == 1
        assert b'"analysis: paused by staff"' in paused.payload
        mark = len(sub.messages)
        time.sleep(0.5)  # a frame/window already inside analyze() may finish
        calls = (face.calls, voice.calls)
        time.sleep(2.0)
        assert (face.calls, voice.calls) == calls, "analysis ran while paused"
        after = [m.topic.rsplit("/", 1)[1] for m in sub.messages[mark:]]
        assert not {"emotion", "alert"} & set(after), after
        kinds_before = [m.topic.rsplit("/", 1)[1] for m in sub.messages[:mark]]
        assert "visit" in kinds_before  # the visit the customer objected to was closed when the pause began
        sub.client.publish(pause_topic, b'{"action": "resume"}', qos=1)
        sub.wait_for(lambda m: m.topic.endswith("/status") and b'"paused":false' in m.payload
                     and sub.messages.index(m) >= mark, timeout=5)
        resumed = len(sub.messages)
        sub.wait_for(lambda m: m.topic.endswith("/emotion") and sub.messages.index(m) >= resumed, timeout=10)
        _until(lambda: face.calls > calls[0] and voice.calls > calls[1])
    finally:
        svc.stop.set()
        runner.join(timeout=10)
    assert not runner.is_alive()
    # the voice worker hands over windows ending on the 10 ms frame grid, so consecutive windows share mel frames
    positions = [e for _, e in voice.windows]
    assert all(e is not None and e % HOP == 0 for e in positions) and positions == sorted(positions), positions
    assert all(int(0.9 * SAMPLE_RATE) <= n <= SAMPLE_RATE for n, _ in voice.windows)
    ends = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/visit") and b'"end"' in m.payload]
    assert ends, "pausing did not end the visit"
    for m in sub.messages:
        if not m.topic.endswith("/pause"):
            validate(m.topic.rsplit("/", 1)[1], json.loads(m.payload))


def _worker_host(cfg_over: dict[str, Any], paused: threading.Event, **parts: Any) -> SimpleNamespace:
    from edge.config import KioskConfig
    from edge.queues import AudioRing, DropQueue
    from edge.voicegate.gate import UngatedVoice

    cfg = KioskConfig.model_validate({"identity": {"site_id": "s", "kiosk_id": "k"}, **cfg_over})
    base = dict(cfg=cfg, clock=time.monotonic, stop=threading.Event(), watchdog=SimpleNamespace(beat=lambda n: None),
                ring=AudioRing(10.0, 16000, 1), gate=UngatedVoice(), obs=DropQueue(64), frames=DropQueue(2),
                latency=SimpleNamespace(add=lambda *a: None), analysed=SimpleNamespace(tick=lambda: None),
                errors={"voice": 0, "face": 0}, analysis_off=paused.is_set, inputs_ended=lambda: False)
    return SimpleNamespace(**{**base, **parts})


def test_audio_captured_during_a_pause_is_never_analysed_after_resume() -> None:
    """The first read after a pause spans it; only the samples captured after analysis was seen on again count."""
    from edge.pipeline import workers

    paused, shares = threading.Event(), []
    paused.set()

    class Voice:
        window_s = 1.0

        def analyze(self, audio: Any, t: float, end: Any = None) -> None:
            shares.append(float(np.mean(np.isclose(audio, 0.5))))  # 0.5 = captured while paused

    svc = _worker_host({"analysis": {"voice_hop_s": 1.5}}, paused, an=SimpleNamespace(voice=Voice()))
    th = threading.Thread(target=workers.voice_loop, args=(svc,), daemon=True)
    t0 = time.monotonic()
    th.start()
    while time.monotonic() - t0 < 5.5:
        if paused.is_set() and time.monotonic() - t0 >= 2.2:  # resume in the middle of a hop
            paused.clear()
        svc.ring.write(np.full(800, 0.5 if paused.is_set() else 0.1, np.float32), time.monotonic())
        time.sleep(0.05)
    svc.stop.set()
    th.join(5)
    assert shares and all(s == 0.0 for s in shares), shares


def test_a_frame_captured_during_a_pause_is_not_analysed_after_resume() -> None:
    from edge.pipeline import workers

    paused, seen = threading.Event(), []
    paused.set()
    face = SimpleNamespace(analyze=lambda frame: seen.append(frame.seq))
    svc = _worker_host({}, paused, an=SimpleNamespace(face=face))
    th = threading.Thread(target=workers.face_loop, args=(svc,), daemon=True)
    th.start()
    time.sleep(0.2)
    svc.frames.put(Frame(image=None, t=time.monotonic(), seq=1))  # captured while paused, still queued at resume
    paused.clear()
    time.sleep(0.7)
    svc.frames.put(Frame(image=None, t=time.monotonic(), seq=2))
    time.sleep(0.7)
    svc.stop.set()
    th.join(5)
    assert seen == [2]


@pytest.mark.parametrize("loop", ["voice_loop", "face_loop"])
def test_a_file_run_that_ends_while_paused_lets_the_service_stop(loop: str) -> None:
    """Input files finished during a pause (or outside opening hours): both workers return, so the run ends."""
    from edge.pipeline import workers

    paused = threading.Event()
    paused.set()
    an = SimpleNamespace(voice=SimpleNamespace(window_s=1.0, analyze=lambda *a, **k: None),
                         face=SimpleNamespace(analyze=lambda frame: None))
    svc = _worker_host({"analysis": {"voice_hop_s": 0.25}}, paused, an=an, inputs_ended=lambda: True)
    svc.ring.write(np.full(800, 0.1, np.float32), time.monotonic())
    th = threading.Thread(target=getattr(workers, loop), args=(svc,), daemon=True)
    th.start()
    th.join(5)
    stopped = not th.is_alive()
    svc.stop.set()
    assert stopped, f"{loop} kept running after its input ended"


def test_a_pause_survives_a_restart_and_ends_on_time(tmp_path: Path) -> None:
    """The pause lived in memory only: a crash, a watchdog restart or a deploy resumed analysis at once, against a
    customer's opt-out (the eu profile promises at least 5 minutes unless staff resume)."""
    from edge.privacy.pause import PauseGate

    state = tmp_path / "state" / "pause.json"
    wall = [1_000_000.0]
    first = PauseGate(300.0, state, wall=lambda: wall[0])
    first.receive(b'{"action": "pause", "by": "tablet"}')
    assert first.update(10.0) == (True, True) and first.is_set() and state.exists()
    wall[0] += 100.0  # the service dies 100 s into the pause and comes back
    second = PauseGate(300.0, state, wall=lambda: wall[0])
    assert second.is_set()  # before the first update: the workers analyse nothing
    assert second.update(5000.0) == (False, True)  # reported as a change: the status says paused again
    assert second.update(5000.0 + 199.0)[1] is False and second.is_set()
    assert second.update(5000.0 + 201.0) == (False, True) and not second.is_set() and not state.exists()
    # a clock stepped back by a day (no real-time clock) cannot stretch a pause past pause_max_s
    third = PauseGate(300.0, state, wall=lambda: wall[0])
    third.receive(b'{"action": "pause"}')
    third.update(0.0)
    wall[0] -= 86_400.0
    fourth = PauseGate(300.0, state, wall=lambda: wall[0])
    fourth.update(0.0)
    assert fourth.is_set() and fourth.update(300.5)[1] and not fourth.is_set()
    fourth.receive(b'{"action": "pause"}')
    fourth.update(400.0)
    fourth.receive(b'{"action": "resume"}')
    fourth.update(401.0)
    assert not state.exists() and not PauseGate(300.0, state).is_set()  # a resume is kept too
