"""Privacy end to end with the real models: no file is written, every published byte is schema-valid, staff unseen."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf

from edge.config import parse_config
from edge.demo.media import make_demo
from edge.events import KINDS, validate
from edge.face.detector import make_detector
from edge.face.expression import FaceAnalyzer
from edge.pipeline.analyzers import build_analyzers
from edge.pipeline.service import Service
from edge.runtime import ModelError, load_manifest, load_model
from edge.types import Frame

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
STAFF = [[0.0, 0.0], [0.45, 0.0], [0.38, 1.0], [0.0, 1.0]]


def _analyzers(cfg: Any) -> Any:
    try:
        return build_analyzers(cfg)
    except ModelError as exc:
        pytest.skip(f"trained models not installed: {exc}")


def _tree(root: Path, top_only: bool = False) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with (size, mtime_ns)."""
    out: dict[str, tuple[int, int]] = {}
    paths = root.iterdir() if top_only else root.rglob("*")
    for p in paths:
        if top_only and p.is_dir():
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


class FdWatch(threading.Thread):
    """Samples /proc/self/fd every few ms and records every regular file opened for writing after start."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.baseline = self._fds()
        self.written: set[str] = set()
        self.read: set[str] = set()
        self.samples = 0
        self.done = threading.Event()

    @staticmethod
    def _fds() -> dict[str, str]:
        out = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                out[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
        return out

    def run(self) -> None:
        while not self.done.is_set():
            for fd, target in self._fds().items():
                if self.baseline.get(fd) == target or not target.startswith("/") or target.startswith(("/dev/",
                                                                                                      "/proc/")):
                    continue
                try:
                    info = Path(f"/proc/self/fdinfo/{fd}").read_text()
                except OSError:
                    continue
                flags = int(next(ln.split()[1] for ln in info.splitlines() if ln.startswith("flags:")), 8)
                (self.written if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND) else self.read).add(target)
            self.samples += 1
            time.sleep(0.005)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
@pytest.mark.parametrize("with_state", [False, True], ids=["no-state-dir", "state-dir"])
def test_service_writes_no_file_and_publishes_only_schema_valid_bytes(
        mosquitto: Any, subscribe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_state: bool) -> None:
    """Without a state folder nothing is written; with one, only the outbox database (and its WAL files)."""
    video, mono = make_demo(tmp_path / "media", seconds=8.0)
    # Issue 23: eu requires a staff-voice gate; a counter with a staff microphone (channel 1, hearing the customer
    # 14 dB lower) is captured live as 2 channels and gated before the voice model.
    speech, rate = sf.read(mono, dtype="float32")
    audio = video.parent / "counter-2ch.wav"
    sf.write(audio, np.stack([speech, 0.2 * speech], axis=1), rate)
    cwd, home, tmp = (tmp_path / n for n in ("cwd", "home", "tmp"))
    for d in (cwd, home, tmp):
        d.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the interpreter's .pyc cache is not the service's
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    state = tmp_path / "state"
    cfg = parse_config({
        "identity": {"site_id": "site-n", "kiosk_id": "kiosk-n", "counter_name": "N"},
        "camera": {"source": str(video), "pace": "realtime"},  # a visit starts from face observations only
        "microphone": {"source": str(audio), "pace": "realtime", "channels": 2},
        "analysis": {"face_fps": 30.0, "voice_hop_s": 0.5},
        "fusion": {"emit_interval_s": 1.0, "visit_start_s": 0.3},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "health_interval_s": 1.0},
        "privacy": {"profile": "eu", "staff_zones": [[[0, 0], [0.15, 0], [0.15, 1], [0, 1]]], "staff_audio_channel": 1,
                    "notice_text": {"en": "Emotion sensing in use at this counter; nothing is recorded."}},
        **({"state": {"dir": str(state)}} if with_state else {}),
    })
    analyzers = _analyzers(cfg)
    roots = {"cwd": (cwd, False), "home": (home, False), "tmp": (tmp, False), "media": (video.parent, False),
             "models": (MODELS, True)}
    before = {k: _tree(p, top) for k, (p, top) in roots.items()}
    sub = subscribe(mosquitto, "#")
    watch = FdWatch()
    watch.start()
    svc = Service(cfg, analyzers)
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    runner.join(timeout=90)
    watch.done.set()
    watch.join()
    assert not runner.is_alive(), "service did not stop after its file sources ended"
    sub.wait_for(lambda m: m.topic.endswith("/status") and b'"offline"' in m.payload, timeout=5)
    after = {k: _tree(p, top) for k, (p, top) in roots.items()}
    for k in roots:
        assert after[k] == before[k], f"files changed under {k}: {set(after[k].items()) ^ set(before[k].items())}"
    assert watch.samples > 100
    outbox = {str(state / f"outbox.db{s}") for s in ("", "-wal", "-shm", "-journal")}  # -journal: at creation
    if with_state:
        assert str(state / "outbox.db") in watch.written and watch.written <= outbox, sorted(watch.written)
        assert {p.name for p in state.iterdir()} <= {"outbox.db", "outbox.db-wal", "outbox.db-shm"}
        with sqlite3.connect(state / "outbox.db") as con:  # every event acknowledged: nothing left behind
            assert con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    else:
        assert not watch.written, f"files opened for writing: {sorted(watch.written)}"
        assert not state.exists()
    assert str(video) in watch.read or str(audio) in watch.read, "the fd watch did not see the media being read"
    kinds = set()
    for m in sub.messages:
        prefix, kind = m.topic.rsplit("/", 1)
        assert prefix == "edge-emotion/site-n/kiosk-n" and kind in KINDS, m.topic
        obj = json.loads(m.payload)
        validate(kind, obj)
        assert m.payload == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(), \
            "published bytes beyond the canonical JSON of a valid payload"
        kinds.add(kind)
    assert {"status", "health", "emotion", "visit"} <= kinds, kinds
    status = json.loads(next(m.payload for m in sub.messages if m.topic.endswith("/status")))
    assert status["privacy_profile"] == "eu"
    healths = [json.loads(m.payload) for m in sub.messages if m.topic.endswith("/health")]
    assert max(h["voice_windows"] for h in healths) > 0, "the gate kept every customer window from the voice model"
    assert "voice_gated_fault" in healths[-1]["drops"] and "voice_gated_staff" not in healths[-1]["drops"]


def _grace(height: int) -> np.ndarray:
    import matplotlib.cbook as cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert img is not None
    return cv2.resize(img, (round(img.shape[1] * height / img.shape[0]), height), interpolation=cv2.INTER_AREA)


def test_real_face_in_staff_zone_gives_no_reading_with_the_real_model() -> None:
    try:
        model = load_model(load_manifest(MODELS), "face_expression", threads=1)
    except ModelError as exc:
        pytest.skip(f"trained face model not installed: {exc}")
    p = _grace(300)
    frames = {}
    for name, cx in (("staff", 0.2), ("customer", 0.7)):
        f = np.full((480, 640, 3), 90, np.uint8)
        x = int(cx * 640 - p.shape[1] / 2)
        f[60:360, x:x + p.shape[1]] = p
        frames[name] = f
    plain = FaceAnalyzer(make_detector("haar", None), model)
    assert plain.analyze(Frame(frames["staff"], 0.0, 0)) is not None, "control: the face is visible unmasked"
    guarded = FaceAnalyzer(make_detector("auto", load_manifest(MODELS)), model, staff_zones=[STAFF])
    assert all(guarded.analyze(Frame(frames["staff"], float(i), i)) is None for i in range(5))
    r = guarded.analyze(Frame(frames["customer"], 6.0, 6))
    assert r is not None and r.modality == "face"


def test_replay_goes_through_the_same_mask(tmp_path: Path) -> None:
    from edge.pipeline.replay import replay

    video = tmp_path / "staff.mp4"
    p = _grace(300)
    frame = np.full((480, 640, 3), 90, np.uint8)
    x = int(0.2 * 640 - p.shape[1] / 2)
    frame[60:360, x:x + p.shape[1]] = p
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(20):
        writer.write(frame)
    writer.release()
    counts = {}
    for zones in ([], [STAFF]):
        cfg = parse_config({"identity": {"site_id": "r", "kiosk_id": "r"}, "mqtt": {"enabled": False},
                            "microphone": {"enabled": False}, "analysis": {"voice": False, "face_fps": 10.0},
                            "privacy": {"staff_zones": zones}})
        res = replay(cfg, _analyzers(cfg), video, None)
        counts[len(zones)] = (res.frames, res.face_readings)
    assert counts[0][0] >= 15 and counts[0][1] >= counts[0][0] // 2, counts  # control: the face is analysed
    assert counts[1] == (counts[0][0], 0), counts
