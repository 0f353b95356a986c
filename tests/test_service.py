"""End to end: the real service on generated media, with real models, against a real mosquitto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.demo.media import make_demo
from edge.events import validate
from edge.pipeline.analyzers import build_analyzers
from edge.pipeline.service import Service

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def demo_media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo(tmp_path_factory.mktemp("demo"), seconds=10.0)


def kiosk_cfg(broker, video: Path, audio: Path, **over):  # type: ignore[no-untyped-def]
    data = {
        "identity": {"site_id": "site-t", "kiosk_id": "kiosk-t", "counter_name": "Test counter"},
        "camera": {"source": str(video), "pace": over.pop("pace", "fast"), "loop": over.pop("loop", False)},
        "microphone": {"source": str(audio), "pace": "realtime", "loop": over.pop("mic_loop", False)},
        "analysis": {"face_fps": 30.0, "voice_hop_s": 0.5},
        "fusion": {"emit_interval_s": 0.2, "visit_start_s": 0.3},
        "mqtt": {"host": broker.host, "port": broker.port, "health_interval_s": 1.0,
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v}
    return parse_config(data)


def payloads(sub, kind: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/" + kind)]


def test_service_publishes_valid_events_and_goes_offline(mosquitto, subscribe, demo_media) -> None:  # type: ignore[no-untyped-def]
    video, audio = demo_media
    sub = subscribe(mosquitto, "edge-emotion/site-t/+/#")
    # the camera in real time like the microphone: a visit starts from face observations only (voice hops after
    # a file played in a flash no longer stand in for a face)
    cfg = kiosk_cfg(mosquitto, video, audio, pace="realtime")
    svc = Service(cfg, build_analyzers(cfg))
    th = threading.Thread(target=svc.run, daemon=True)
    th.start()
    th.join(timeout=60)
    assert not th.is_alive(), "service did not stop after its file sources ended"
    sub.wait_for(lambda m: m.topic.endswith("/status") and b'"offline"' in m.payload, timeout=5)
    for m in sub.messages:
        kind = m.topic.rsplit("/", 1)[1]
        validate(kind, json.loads(m.payload))
    status = payloads(sub, "status")
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    assert set(status[0]["models"]) >= {"face_expression", "voice_emotion"}
    emotions = payloads(sub, "emotion")
    assert emotions, "no emotion events"
    assert any(e["modalities"]["face"]["used"] for e in emotions), "face never contributed"
    assert any(e["modalities"]["voice"]["used"] for e in emotions), "voice never contributed"
    assert any(e["visit_id"] for e in emotions)
    visits = payloads(sub, "visit")
    assert [v["phase"] for v in visits][:1] == ["start"] and visits[-1]["phase"] == "end"
    health = payloads(sub, "health")
    assert health and health[-1]["sources"]["camera"]["state"] in ("ok", "ended")
    assert health[-1]["latency_ms"]["face"]["n"] > 0


def test_broker_restart_reconnects_and_republishes_online(mosquitto, subscribe, demo_media) -> None:  # type: ignore[no-untyped-def]
    video, audio = demo_media
    cfg = kiosk_cfg(mosquitto, video, audio, pace="realtime", loop=True, mic_loop=True)
    svc = Service(cfg, build_analyzers(cfg))
    stop = threading.Event()
    th = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    th.start()
    try:
        sub = subscribe(mosquitto, "edge-emotion/#")
        sub.wait_for(lambda m: m.topic.endswith("/emotion"), timeout=15)
        mosquitto.stop()
        time.sleep(1.5)
        assert th.is_alive(), "service died when the broker went away"
        mosquitto.start()
        sub2 = subscribe(mosquitto, "edge-emotion/#")
        sub2.wait_for(lambda m: m.topic.endswith("/status") and b'"online"' in m.payload, timeout=10)
        sub2.wait_for(lambda m: m.topic.endswith("/emotion"), timeout=10)
        assert svc.publisher.stats()["connects"] >= 2
    finally:
        stop.set()
        th.join(timeout=10)
    assert not th.is_alive()


def _cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_replay_crema_d_anger_uses_both_real_models() -> None:
    video = SHARED / "av" / "crema-d" / "1001_DFA_ANG_XX.mp4"
    audio = SHARED / "speech" / "crema-d" / "1001_DFA_ANG_XX.flac"
    if not video.exists():
        pytest.skip(f"research fixtures not present at {SHARED} (../shared/data beside the project)")
    r = _cli("replay", "--video", str(video), "--audio", str(audio))
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    emotions = [e for e in events if e["schema"].startswith("edge-emotion/emotion/")]
    assert emotions, r.stderr
    for e in events:
        validate(e["schema"].split("/")[1], e)
    assert any(e["modalities"]["face"]["used"] for e in emotions)
    assert any(e["modalities"]["voice"]["used"] for e in emotions)


def test_unreadable_video_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video" * 100)
    r = _cli("replay", "--video", str(bad))
    assert r.returncode == 4
    assert "broken.mp4" in r.stderr and "Traceback" not in r.stderr


def test_missing_and_corrupted_model_are_clear_errors(tmp_path: Path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("work"))
    cfgfile = tmp_path / "k.toml"
    cfgfile.write_text(f'[identity]\nsite_id = "s"\nkiosk_id = "k"\n[models]\ndir = "{models}"\n')
    f = models / "voice_emotion.tflite"
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    r = _cli("check-config", str(cfgfile))
    assert r.returncode == 3 and "sha256 mismatch" in r.stderr and "voice_emotion" in r.stderr
    f.unlink()
    r = _cli("run", "--config", str(cfgfile))
    assert r.returncode == 3 and "file not found" in r.stderr and "Traceback" not in r.stderr


def test_missing_microphone_is_one_clear_line_and_service_keeps_running(tmp_path: Path, mosquitto) -> None:  # type: ignore[no-untyped-def]
    cfgfile = tmp_path / "k.toml"
    cfgfile.write_text(
        '[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nenabled = false\n'
        '[microphone]\nsource = "NoSuchMicrophone"\nkind = "device"\nreopen_min_s = 5\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n')
    p = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfgfile)], cwd=ROOT,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    assert p.poll() is None, "service exited instead of retrying the microphone"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=15)
    lines = [ln for ln in err.splitlines() if "NoSuchMicrophone" in ln]
    assert lines, err
    assert p.returncode == 0


def test_file_run_fuses_the_last_readings_before_stopping(tmp_path: Path) -> None:
    """A file run stops only after the frames still queued or being analysed are read and fused (none lost)."""
    import cv2
    import numpy as np

    from edge.pipeline.analyzers import Analyzers

    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(10):
        vw.write(np.full((48, 64, 3), i * 20, np.uint8))
    vw.release()

    class SlowFace:
        """Analysis slower than the file plays: frames wait in the queue when the file ends."""

        done = 0

        def analyze(self, frame: object) -> None:
            time.sleep(0.3)
            SlowFace.done += 1

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                        "camera": {"source": str(video), "pace": "fast", "loop": False},
                        "microphone": {"enabled": False}, "analysis": {"face_fps": 30.0}})
    svc = Service(cfg, Analyzers(face=SlowFace()))  # type: ignore[arg-type]
    fused: list[object] = []
    observe = svc.core.observe
    svc.core.observe = lambda ob: (fused.append(ob), observe(ob))[1]  # type: ignore[method-assign]
    assert svc.run() == 0
    assert svc.frames.qsize() == 0 and svc.obs.qsize() == 0
    assert SlowFace.done >= 1 and len(fused) == SlowFace.done  # every analysed frame reached fusion
    assert svc.frames.puts == 10 and SlowFace.done + svc.frames.dropped + svc.frames.skipped == 10  # all counted


class _SwitchingSource:
    """A capture source whose state the test sets (a camera lost and back, without a device)."""

    ident = None

    def __init__(self) -> None:
        self.state = "ok"

    def start(self) -> None:
        pass

    def stats(self) -> dict[str, object]:
        return {"state": self.state, "error": None if self.state == "ok" else f"camera {self.state}",
                "frames_in": 0, "reopens": 0}


def test_a_lost_camera_republishes_the_retained_status_while_connected() -> None:
    """The retained status changed only on connect, pause or outbox trouble: a camera lost mid-run stayed 'ok'."""
    from edge.pipeline.analyzers import Analyzers
    from edge.transport.publishers import RecordingPublisher

    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                        "microphone": {"enabled": False}})
    class NoFace:
        def analyze(self, frame: object) -> None:
            return None

    pub = RecordingPublisher()
    svc = Service(cfg, Analyzers(face=NoFace()), publisher=pub)  # type: ignore[arg-type]
    cam = _SwitchingSource()
    svc.video = cam  # type: ignore[assignment]
    stop = threading.Event()
    th = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    th.start()

    def degraded() -> list[list[str]]:
        return [p["degraded"] for p in pub.payloads("status")]

    try:
        deadline = time.monotonic() + 10
        while not degraded() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert degraded() and not any("camera" in d for d in degraded()[-1]), degraded()
        cam.state = "reopening"
        deadline = time.monotonic() + 10
        while not any("camera: reopening" in d for d in degraded()[-1]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("camera: reopening" in d for d in degraded()[-1]), degraded()
        n = len(degraded())
        time.sleep(2.5)
        assert len(degraded()) == n  # the same state is not republished every second
        cam.state = "ok"
        deadline = time.monotonic() + 10
        while any("camera" in d for d in degraded()[-1]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any("camera" in d for d in degraded()[-1]), degraded()
    finally:
        stop.set()
        th.join(15)


def test_a_run_whose_only_source_failed_exits_with_the_media_code(tmp_path: Path) -> None:
    """A missing file stopped the service with exit 0, so systemd's Restart=on-failure never acted."""
    cfgfile = tmp_path / "k.toml"
    cfgfile.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[microphone]\nenabled = false\n'
                       '[camera]\nsource = "no-such-clip.mp4"\n[mqtt]\nenabled = false\n')
    r = _cli("run", "--config", str(cfgfile))
    assert r.returncode == 4, r.stderr[-2000:]
    assert "camera failed" in r.stderr and "no-such-clip.mp4" in r.stderr


def test_a_stop_request_exits_0_though_a_source_failed_before(tmp_path: Path) -> None:
    """Exit 4 is for a run whose inputs all ended with one never working; a SIGTERM (systemctl stop/restart) of a
    kiosk whose camera failed while its microphone worked ended with 4 too, and the unit showed as failed."""
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "hum.wav", (0.01 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    cfgfile = tmp_path / "k.toml"
    cfgfile.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nsource = "no-such-clip.mp4"\n'
                       f'[microphone]\nsource = "{tmp_path / "hum.wav"}"\nloop = true\n[mqtt]\nenabled = false\n')
    p = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfgfile)], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(6)
        assert p.poll() is None, p.communicate()[1][-2000:]
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err[-2000:]
    assert "nothing was analysed" not in err


def test_replay_never_turns_on_a_microphone_the_profile_allows_only_off(tmp_path: Path, demo_media) -> None:  # type: ignore[no-untyped-def]
    """replay switched the microphone on for --video after the config was checked: an eu config valid only with
    the microphone off replayed the sound track without a staff-voice gate (and could publish the result)."""
    video, _audio = demo_media
    cfgfile = tmp_path / "eu.toml"
    cfgfile.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[microphone]\nenabled = false\n'
                       '[fusion]\nemit_interval_s = 1.0\n[privacy]\nprofile = "eu"\n'
                       'notice_text = {en = "Emotion analysis in use."}\n'
                       'staff_zones = [[[0, 0], [0.3, 0], [0.3, 1], [0, 1]]]\n[mqtt]\nenabled = false\n')
    r = _cli("replay", "--config", str(cfgfile), "--video", str(video), "--quiet")
    assert r.returncode == 2 and "privacy.staff_voice_gate" in r.stderr, r.stderr[-2000:]
    r = _cli("replay", "--config", str(cfgfile), "--video", str(video), "--publish")
    assert r.returncode == 2 and "--publish needs the config's broker" in r.stderr, r.stderr[-2000:]


def test_replay_publishes_as_its_own_kiosk(tmp_path: Path, mosquitto, subscribe, demo_media) -> None:  # type: ignore[no-untyped-def]
    """replay --publish connected with the live kiosk's client id and topics: the two kicked each other off the
    broker and the replay's exit left the live kiosk's retained status 'offline'."""
    video, _audio = demo_media
    sub = subscribe(mosquitto, "edge-emotion/s/#")
    cfgfile = tmp_path / "k.toml"
    cfgfile.write_text(f'[identity]\nsite_id = "s"\nkiosk_id = "k1"\n[mqtt]\nhost = "{mosquitto.host}"\n'
                       f'port = {mosquitto.port}\n')
    r = _cli("replay", "--config", str(cfgfile), "--video", str(video), "--publish", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    time.sleep(0.5)
    kiosks = {m.topic.split("/")[2] for m in sub.messages}
    assert kiosks == {"k1-replay"}, kiosks
    # the replay id is not a kiosk: its retained status is cleared at the end, not left "offline" for ever
    statuses = [m.payload for m in sub.messages if m.topic.endswith("/status")]
    assert statuses and statuses[-1] == b"", statuses[-1:]
    late = subscribe(mosquitto, "edge-emotion/s/+/status")
    time.sleep(0.5)
    assert not late.messages, [m.topic for m in late.messages]
    # no broker: the events were not delivered, and the exit code says so
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    cfgfile.write_text(f'[identity]\nsite_id = "s"\nkiosk_id = "k1"\n[mqtt]\nhost = "127.0.0.1"\nport = {free}\n')
    r = _cli("replay", "--config", str(cfgfile), "--video", str(video), "--publish", "--quiet")
    assert r.returncode == 1 and "not delivered to the broker" in r.stderr, r.stderr[-2000:]


def test_small_replay_and_demo_mistakes_say_what_is_wrong(tmp_path: Path) -> None:
    """make-demo --seconds 0.01 wrote an unreadable 258-byte video and exited 0; replay of a folder said 'not
    found'; audio shorter than one voice window gave '0 voice windows' without a word."""
    r = _cli("make-demo", str(tmp_path / "d"), "--seconds", "0.01")
    assert r.returncode == 2 and "must be at least 2" in r.stderr, r.stderr
    r = _cli("replay", "--video", str(tmp_path))
    assert r.returncode == 4 and "not a regular file" in r.stderr, r.stderr
    import numpy as np
    import soundfile as sf

    short = tmp_path / "one.wav"
    sf.write(short, np.zeros(8000, np.float32), 16000)
    r = _cli("replay", "--audio", str(short), "--quiet")
    assert r.returncode == 0 and "warning: no voice window analysed" in r.stderr, r.stderr[-2000:]
