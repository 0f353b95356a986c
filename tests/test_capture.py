"""Capture: media helpers, VideoSource and AudioSource on generated files and fake hardware."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf

from edge.capture import media
from edge.capture.audio import AudioSource, classify_audio_source
from edge.capture.media import (
    MediaError,
    classify_video_source,
    iter_video_file,
    open_video,
    read_audio_file,
    resample,
    resolve_input_device,
)
from edge.capture.video import VideoSource
from edge.config import CameraConfig, MicrophoneConfig
from edge.queues import AudioRing, DropQueue
from edge.types import Frame

FPS, N_FRAMES = 20, 40
HAS_FFMPEG = shutil.which("ffmpeg") is not None


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def make_video(path: Path, n: int = N_FRAMES, fps: int = FPS) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (64, 48))
    assert w.isOpened()
    for i in range(n):  # a white 8x8 block at (row, col) = divmod(i % 48, 8) encodes the frame index
        img = np.zeros((48, 64, 3), np.uint8)
        r, c = divmod(i % 48, 8)
        img[r * 8:r * 8 + 8, c * 8:c * 8 + 8] = 255
        w.write(img)
    w.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4")


def frame_index(img: np.ndarray) -> int:
    blocks = img[..., 1].reshape(6, 8, 8, 8).mean(axis=(1, 3))
    return int(np.argmax(blocks))


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spec))])


# -- media helpers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "kind"), [
    ("0", "device"), ("/dev/video2", "device"), ("rtsp://cam/stream", "rtsp"), ("RTSPS://cam/s", "rtsp"),
    ("http://cam/mjpg", "rtsp"), ("v4l2src ! videoconvert ! appsink", "gstreamer"), ("clip.mp4", "file"),
    ("/data/demo.mkv", "file"), ("rtmp://admin:pw@10.0.0.7/live", "rtsp"), ("srt://10.0.0.7:9000", "rtsp"),
    ("udp://239.0.0.1:1234", "rtsp"),
])
def test_classify_video_source(source: str, kind: str) -> None:
    assert classify_video_source(source, "auto") == kind
    assert classify_video_source(source, "file") == "file"


def test_an_existing_file_named_with_a_bang_is_a_file(video: Path, tmp_path: Path) -> None:
    """"wow!.mp4" was taken for a GStreamer pipeline."""
    clip = tmp_path / "wow!.mp4"
    shutil.copy(video, clip)
    assert classify_video_source(str(clip)) == "file"
    assert sum(1 for _ in iter_video_file(clip)) > 0
    src = VideoSource(CameraConfig(source="wow!.mp4"), DropQueue(2), threading.Event(), resolve=lambda s: tmp_path / s)
    assert src.kind == "file" and src.source == str(clip)  # relative to the config file's folder, as the service
    long = "nvarguscamerasrc " + "x=1 " * 70 + "! video/x-raw ! videoconvert ! appsink"  # > 255 characters, no "/"
    assert classify_video_source(long) == "gstreamer"  # is_file raised ENAMETOOLONG


def test_a_stable_device_path_is_a_camera_not_a_file(tmp_path: Path) -> None:
    """/dev/v4l/by-id/... (a symlink to the device) was read as a file: 'not a regular file', failed for good."""
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null character device here")
    assert classify_video_source("/dev/null") == "device"  # any character device under /dev, as by-id links resolve
    assert classify_video_source("/dev/no-such-camera") == "file"  # absent: still named in a 'not found' error


def test_a_stream_url_failure_never_shows_its_password() -> None:
    """An rtmp/srt URL read as a file went through Path ('rtmp:/user:pw@...'), past the URL redaction."""
    from edge.capture.media import _check_file
    from edge.redact import redact

    assert redact("rtmp:/admin:S3cretPW@10.0.0.7/live") == "rtmp:/***@10.0.0.7/live"
    with pytest.raises(MediaError) as exc:
        _check_file(Path("rtmp://admin:S3cretPW@10.0.0.7/live"), "video file")
    assert "S3cretPW" not in str(exc.value) and "***@10.0.0.7" in str(exc.value)


def test_a_microphone_url_is_refused_by_the_config() -> None:
    """An rtsp URL as the microphone was read as a missing file, its password in the retained status."""
    from edge.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as exc:
        parse_config({"microphone": {"source": "rtsp://admin:S3cretPW@10.0.0.7/audio"}})
    assert "microphone.source" in str(exc.value) and "S3cretPW" not in str(exc.value)


def test_classify_audio_source() -> None:
    assert classify_audio_source("default") == "device"
    assert classify_audio_source("USB Mic") == "device"
    assert classify_audio_source("2") == "device"
    assert classify_audio_source("demo/voice.wav") == "file"
    assert classify_audio_source("talk.m4a") == "file"


def test_iter_video_file_all_frames_with_media_times(video: Path) -> None:
    got = list(iter_video_file(video))
    assert len(got) == N_FRAMES
    times = [t for t, _ in got]
    np.testing.assert_allclose(times, np.arange(N_FRAMES) / FPS, atol=1e-3)
    assert [frame_index(f) for _, f in got] == list(range(N_FRAMES))
    assert got[0][1].shape == (48, 64, 3) and got[0][1].dtype == np.uint8


def test_iter_video_file_subsamples_by_media_time(video: Path) -> None:
    got = list(iter_video_file(video, fps=5.0))
    times = np.array([t for t, _ in got])
    np.testing.assert_allclose(times, np.arange(0, N_FRAMES / FPS, 0.2), atol=1e-3)  # 2 s at 5 fps
    assert [frame_index(f) for _, f in got] == [int(round(t * FPS)) for t in times]
    assert len(list(iter_video_file(video, fps=7.0))) in (14, 15)  # never more than 7 per media second


def test_open_video_errors_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"video file '.*nope\.mp4': not found"):
        open_video(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MediaError, match=r"garbage\.mp4': not a readable video"):
        open_video(str(bad))
    with pytest.raises(MediaError, match=r"garbage\.mp4'"):
        list(iter_video_file(bad))
    with pytest.raises(MediaError, match=r"not a regular file"):
        open_video(str(tmp_path))
    with pytest.raises(MediaError, match=r"camera source '/dev/video97': cannot open \(device missing or busy\)"):
        open_video("/dev/video97")


def test_open_video_stream_error_hides_credentials() -> None:
    with pytest.raises(MediaError) as exc:
        open_video("rtsp://admin:hunter2@127.0.0.1:1/stream")
    assert "hunter2" not in str(exc.value) and "127.0.0.1:1/stream" in str(exc.value)


def test_gstreamer_pipeline_error_is_clear() -> None:
    with pytest.raises(MediaError, match=r"gstreamer pipeline 'fakesrc ! appsink'"):
        open_video("fakesrc ! appsink")


def test_read_wav_resamples_stereo_44k(tmp_path: Path) -> None:
    x = tone(440, 44100, 1.0)
    stereo = np.stack([x, x], axis=1)
    sf.write(tmp_path / "a.wav", stereo, 44100)
    y = read_audio_file(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 16000) <= 1
    assert peak_hz(y) == pytest.approx(440, abs=2)
    assert float(np.sqrt(np.mean(y[1000:-1000] ** 2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_resample_is_band_limited() -> None:
    y = resample(tone(12000, 44100, 1.0), 44100, 16000)  # above the new Nyquist: must vanish, not alias
    assert float(np.sqrt(np.mean(y[200:-200] ** 2))) < 0.01
    up = resample(tone(1000, 8000, 0.5), 8000, 16000)
    assert up.size == 8000 and peak_hz(up) == pytest.approx(1000, abs=3)
    same = tone(300, 16000, 0.1)
    np.testing.assert_array_equal(resample(same, 16000, 16000), same)


def test_read_flac_8k_upsampled(tmp_path: Path) -> None:
    sf.write(tmp_path / "b.flac", tone(1000, 8000, 0.5), 8000)
    y = read_audio_file(tmp_path / "b.flac")
    assert abs(y.size - 8000) <= 1 and peak_hz(y) == pytest.approx(1000, abs=3)
    assert np.abs(y).max() <= 1.0


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")
def test_read_mp4_audio_track_via_ffmpeg(tmp_path: Path) -> None:
    out = tmp_path / "talk.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=600:sample_rate=48000:"
                    "duration=1", "-f", "lavfi", "-i", "color=c=black:s=64x48:d=1", "-c:v", "mpeg4", "-c:a", "aac",
                    "-shortest", str(out)], check=True, timeout=60)
    y = read_audio_file(out)
    assert 15000 <= y.size <= 17500
    assert peak_hz(y[2000:-2000]) == pytest.approx(600, abs=3)


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")
def test_video_without_audio_track_is_clear_error(video: Path) -> None:
    with pytest.raises(MediaError, match=r"clip\.mp4': no audio track"):
        read_audio_file(video)


def test_a_float_audio_file_holding_nan_is_refused(tmp_path: Path) -> None:
    """NaN samples trained (and analysed) silently as garbage features."""
    from edge.capture.media import read_audio_channels

    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    for read in (read_audio_file, read_audio_channels):
        with pytest.raises(MediaError, match="1 sample\\(s\\) that are not numbers"):
            read(tmp_path / "nan.wav")


def test_unreadable_audio_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"audio file '.*missing\.wav': not found"):
        read_audio_file(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage" * 10)
    with pytest.raises(MediaError, match=r"bad\.wav'"):
        read_audio_file(bad)


# -- microphone resolution -------------------------------------------------------------------------------
def fake_sd(devices: list[tuple[str, int]], **extra: Any) -> SimpleNamespace:
    listing = [{"name": n, "max_input_channels": ch, "default_samplerate": 48000.0} for n, ch in devices]
    return SimpleNamespace(query_devices=lambda: listing, **extra)


def test_resolve_input_device_by_name_index_default(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = fake_sd([("HDMI out", 0), ("Built-in Mic", 2), ("Jabra USB Mic", 1)])
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    assert resolve_input_device("usb mic") == 2
    assert resolve_input_device("1") == 1
    assert resolve_input_device("default") is None
    with pytest.raises(MediaError, match=r"microphone 'Studio Mic': no such input device \(available: 1 'Built-in"):
        resolve_input_device("Studio Mic")
    with pytest.raises(MediaError, match=r"microphone '0': no input device with that index"):
        resolve_input_device("0")  # an output-only device


def test_resolve_input_device_none_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "_sounddevice", lambda: fake_sd([("HDMI out", 0)]))
    with pytest.raises(MediaError, match=r"microphone 'USB Mic': no input devices found"):
        resolve_input_device("USB Mic")


def test_resolve_input_device_real_portaudio_names_missing_device() -> None:
    try:
        names = [d["name"] for d in media.list_input_devices()]
    except MediaError as exc:  # PortAudio missing on this machine is itself a clear error
        assert "PortAudio" in str(exc)
        return
    if any("zz-no-such-mic" in n.lower() for n in names):
        pytest.skip("a real device has the test's name")
    with pytest.raises(MediaError, match=r"microphone 'zz-no-such-mic': no (such input device|input devices found)"):
        resolve_input_device("zz-no-such-mic")


def test_sounddevice_missing_is_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import now raises ImportError
    with pytest.raises(MediaError, match=r"PortAudio unavailable.*libportaudio2"):
        resolve_input_device("default")
    src = AudioSource(MicrophoneConfig(source="default"), AudioRing(2.0), threading.Event())
    src.start()
    src.join(5)
    assert src.stats()["state"] == "failed" and "PortAudio" in src.stats()["error"]


# -- VideoSource -----------------------------------------------------------------------------------------
def run_video(cfg: CameraConfig, q: DropQueue[Frame], **kw: Any) -> tuple[VideoSource, threading.Event]:
    stop = threading.Event()
    src = VideoSource(cfg, q, stop, **kw)
    src.start()
    return src, stop


def test_video_fast_file_delivers_every_frame_then_ends(video: Path) -> None:
    q: DropQueue[Frame] = DropQueue(100)
    src, _ = run_video(CameraConfig(source=str(video), pace="fast"), q)
    src.join(10)
    assert not src.is_alive()
    st = src.stats()
    assert (st["state"], st["error"], st["frames_in"], st["dropped"]) == ("ended", None, N_FRAMES, 0)
    frames = [q.get(0) for _ in range(N_FRAMES)]
    assert [f.seq for f in frames if f] == list(range(N_FRAMES))
    assert [frame_index(f.image) for f in frames if f] == list(range(N_FRAMES))
    ts = [f.t for f in frames if f]
    assert ts == sorted(ts)


def test_video_fast_mode_never_blocks_and_counts_drops(video: Path) -> None:
    q: DropQueue[Frame] = DropQueue(2)  # nobody consumes
    src, _ = run_video(CameraConfig(source=str(video), pace="fast"), q)
    src.join(10)
    st = src.stats()
    assert st["state"] == "ended" and st["frames_in"] == N_FRAMES and st["dropped"] == N_FRAMES - 2
    last = q.drain_latest(0)
    assert last is not None and last.seq == N_FRAMES - 1 and q.skipped == 1


def test_video_realtime_is_paced_by_file_fps(video: Path) -> None:
    q: DropQueue[Frame] = DropQueue(2)
    t0 = time.monotonic()
    src, _ = run_video(CameraConfig(source=str(video)), q)
    seen: list[int] = []
    while src.is_alive() or q.qsize():
        f = q.drain_latest(0.05)
        if f is not None:
            seen.append(f.seq)
        if len(seen) == 10:
            fps = src.stats()["fps_in"]
            assert 14 <= fps <= 26, fps
    elapsed = time.monotonic() - t0
    assert N_FRAMES / FPS - 0.15 <= elapsed < N_FRAMES / FPS + 2.0
    assert src.stats()["frames_in"] == N_FRAMES and src.stats()["state"] == "ended"
    assert seen == sorted(seen) and seen[-1] == N_FRAMES - 1


def test_video_loop_restarts_and_stops_promptly(video: Path) -> None:
    q: DropQueue[Frame] = DropQueue(2)
    src, stop = run_video(CameraConfig(source=str(video), pace="fast", loop=True), q)
    assert wait_until(lambda: src.stats()["frames_in"] > 3 * N_FRAMES)
    assert src.stats()["state"] == "ok" and src.stats()["reopens"] == 0
    stop.set()
    src.join(2)
    assert not src.is_alive()


def test_video_missing_file_fails_with_clear_error(tmp_path: Path) -> None:
    src, _ = run_video(CameraConfig(source="nope.mp4"), DropQueue(2), resolve=lambda s: tmp_path / s)
    src.join(5)
    st = src.stats()
    assert st["state"] == "failed" and "nope.mp4': not found" in st["error"] and str(tmp_path) in st["error"]


def test_video_file_replaced_by_garbage_reopens_and_recovers(video: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    clip = tmp_path / "clip.mp4"
    shutil.copy(video, clip)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    cfg = CameraConfig(source="clip.mp4", pace="fast", loop=True, reopen_min_s=0.02, reopen_max_s=0.1)
    caplog.set_level(logging.INFO, logger="edge.capture.video")
    src, stop = run_video(cfg, DropQueue(2), resolve=lambda s: tmp_path / s)
    try:
        assert wait_until(lambda: src.stats()["frames_in"] > 0)
        os.replace(garbage, clip)  # the source "vanishes" between loops
        assert wait_until(lambda: src.stats()["state"] == "reopening")
        assert "not a readable video" in src.stats()["error"]
        assert wait_until(lambda: src.stats()["reopens"] >= 4)  # keeps retrying, capped back-off
        assert src.is_alive()
        n = src.stats()["frames_in"]
        shutil.copy(video, clip)
        assert wait_until(lambda: src.stats()["state"] == "ok" and src.stats()["frames_in"] > n)
        assert src.stats()["error"] is None
    finally:
        stop.set()
        src.join(2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "clip.mp4" in warnings[0].getMessage()
    assert any("capturing again" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to write a header-only mp4")
def test_a_video_file_that_opens_but_has_no_frames_fails(tmp_path: Path) -> None:
    """An mp4 cut after its header opens, reads nothing, and ended quietly ("ended", no error) in `run`."""
    import subprocess

    full = tmp_path / "full.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2",
                    "-movflags", "+faststart", "-pix_fmt", "yuv420p", str(full)], check=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:data.index(b"mdat") + 4])  # header and moov, no frame data
    src, _ = run_video(CameraConfig(source=str(cut), pace="fast"), DropQueue(2))
    src.join(10)
    st = src.stats()
    assert st["frames_in"] == 0 and st["state"] == "failed" and "no frames decoded" in st["error"]


class FakeCap:
    """A camera whose read() fails after ``frames`` frames (the device is unplugged)."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.props: dict[int, float] = {}
        self.released = False

    def read(self) -> tuple[bool, Any]:
        time.sleep(0.001)
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def release(self) -> None:
        self.released = True


def test_video_device_vanishes_then_comes_back() -> None:
    caps: list[FakeCap] = []
    plan = ["ok", "missing", "missing", "missing", "ok"]
    calls: list[float] = []

    def opener(source: str, kind: str) -> FakeCap:
        calls.append(time.monotonic())
        assert (source, kind) == ("/dev/video0", "device")
        if plan[min(len(calls), len(plan)) - 1] == "missing":
            raise MediaError("camera source '/dev/video0': cannot open (device missing or busy)")
        caps.append(FakeCap(frames=5 if len(caps) == 0 else 10**9))
        return caps[-1]

    cfg = CameraConfig(source="/dev/video0", width=640, height=480, reopen_min_s=0.05, reopen_max_s=0.15)
    src, stop = run_video(cfg, DropQueue(2), opener=opener, clock=lambda: 123.0)
    try:
        assert wait_until(lambda: len(caps) == 2 and src.stats()["state"] == "ok" and src.stats()["frames_in"] > 5)
        st = src.stats()
        assert st["reopens"] == 4  # one failed read + three failed opens
        assert caps[0].released and caps[0].props[cv2.CAP_PROP_FRAME_WIDTH] == 640
        gaps = np.diff(calls)
        assert gaps[1] >= 0.09 and gaps[2] >= 0.14 and gaps[3] >= 0.14  # 0.05, 0.1, 0.15 (capped)
        assert src.out.get(1.0) is not None
    finally:
        stop.set()
        src.join(2)
    assert not src.is_alive()


def test_video_stop_interrupts_backoff() -> None:
    def opener(source: str, kind: str) -> FakeCap:
        raise MediaError("camera source '0': cannot open (device missing or busy)")

    src, stop = run_video(CameraConfig(source="0", reopen_min_s=30, reopen_max_s=60), DropQueue(2), opener=opener)
    assert wait_until(lambda: src.stats()["state"] == "reopening")
    t0 = time.monotonic()
    stop.set()
    src.join(2)
    assert not src.is_alive() and time.monotonic() - t0 < 1.0


# -- AudioSource -----------------------------------------------------------------------------------------
def run_audio(cfg: MicrophoneConfig, ring: AudioRing, **kw: Any) -> tuple[AudioSource, threading.Event]:
    stop = threading.Event()
    src = AudioSource(cfg, ring, stop, **kw)
    src.start()
    return src, stop


def test_audio_file_fast_writes_all_blocks_then_ends(tmp_path: Path) -> None:
    x = tone(500, 16000, 1.05)
    sf.write(tmp_path / "v.wav", x, 16000)
    ring = AudioRing(2.0)
    src, _ = run_audio(MicrophoneConfig(source="v.wav", pace="fast", block_ms=100), ring,
                       resolve=lambda s: tmp_path / s)
    src.join(5)
    st = src.stats()
    assert (st["state"], st["blocks_in"], st["overrun_samples"]) == ("ended", 11, 0)
    got, _ = ring.read_new()
    np.testing.assert_allclose(got, x, atol=1e-4)  # 16-bit wav round trip


def test_audio_file_realtime_paced_and_loops(tmp_path: Path) -> None:
    sf.write(tmp_path / "v.flac", tone(300, 16000, 0.3), 16000)
    ring = AudioRing(2.0)
    t0 = time.monotonic()
    src, stop = run_audio(MicrophoneConfig(source=str(tmp_path / "v.flac"), block_ms=50, loop=True), ring)
    try:
        assert wait_until(lambda: ring.total_samples >= int(16000 * 0.6))  # two passes of the file
        elapsed = time.monotonic() - t0
        assert 0.5 <= elapsed < 3.0
        assert src.stats()["state"] == "ok" and src.stats()["blocks_in"] >= 12
        x, t = ring.latest(0.25)
        assert x.size == 4000 and t <= time.monotonic()
    finally:
        stop.set()
        src.join(2)
    assert not src.is_alive()


def test_audio_missing_file_fails_with_clear_error(tmp_path: Path) -> None:
    src, _ = run_audio(MicrophoneConfig(source=str(tmp_path / "gone.wav")), AudioRing(2.0))
    src.join(5)
    st = src.stats()
    assert st["state"] == "failed" and "gone.wav': not found" in st["error"]


class FakeStream:
    """sounddevice.InputStream stand-in: a thread calls the callback every block until unplugged/closed."""

    def __init__(self, owner: FakeSounddevice, samplerate: int, channels: int, dtype: str, blocksize: int,
                 device: Any, callback: Callable[..., None]) -> None:
        assert (samplerate, dtype) == (16000, "float32")
        self.owner, self.blocksize, self.device, self.callback = owner, blocksize, device, callback
        self.channels = channels
        self.closed = threading.Event()
        self.active = False

    def start(self) -> None:
        self.active = True
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        n = 0
        while not self.closed.is_set() and self.owner.plugged:
            status = SimpleNamespace(input_overflow=True) if n == 2 else None
            self.callback(self.owner.block(n, self.blocksize, self.channels), self.blocksize, None, status)
            n += 1
            time.sleep(self.blocksize / 16000 / 4)
        self.active = False

    def close(self, ignore_errors: bool = True) -> None:
        self.closed.set()


class FakeSounddevice:
    """Just enough of the sounddevice module; ``plugged`` toggles the USB microphone."""

    def __init__(self, usb_channels: int = 1, signal: np.ndarray | None = None) -> None:
        self.plugged = True
        self.streams: list[FakeStream] = []
        self.rescans = 0
        self.usb_channels = usb_channels
        self.rates = {16000}  # sample rates the device captures at (a raw ALSA hw: device may offer 48 kHz only)
        self.signal = signal  # (samples, channels) played in a loop; None: 0.25 on channel 0, 0.5 on the others

    def block(self, n: int, size: int, channels: int) -> np.ndarray:
        """The ``n``-th block the device delivers (PortAudio's (frames, channels) float32)."""
        if self.signal is None:
            out = np.full((size, channels), 0.5, np.float32)
            out[:, 0] = 0.25
            return out
        idx = (np.arange(size) + n * size) % self.signal.shape[0]
        return np.ascontiguousarray(self.signal[idx, :channels], np.float32)

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        devs = [{"name": "HDMI", "max_input_channels": 0, "default_samplerate": 48000.0},
                {"name": "Built-in Mic", "max_input_channels": 2, "default_samplerate": 48000.0}]
        if self.plugged:
            devs.append({"name": "Jabra USB Mic", "max_input_channels": self.usb_channels,
                         "default_samplerate": 48000.0})
        if device is not None:
            return devs[int(device)]
        return devs[1] if kind == "input" else devs

    def check_input_settings(self, device: Any = None, channels: int = 1, samplerate: float = 0, **_: Any) -> None:
        if samplerate not in self.rates:
            raise ValueError("Invalid sample rate [PaErrorCode -9997]")

    def InputStream(self, **kw: Any) -> FakeStream:  # noqa: N802 - mirrors sounddevice
        self.streams.append(FakeStream(self, **kw))
        return self.streams[-1]

    def _terminate(self) -> None:
        self.rescans += 1

    def _initialize(self) -> None:
        pass


def test_audio_device_lost_and_replugged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sd = FakeSounddevice()
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    caplog.set_level(logging.INFO, logger="edge.capture.audio")
    ring = AudioRing(2.0)
    cfg = MicrophoneConfig(source="usb mic", block_ms=20, reopen_min_s=0.02, reopen_max_s=0.08)
    src, stop = run_audio(cfg, ring, clock=lambda: 7.0)
    try:
        assert wait_until(lambda: src.stats()["state"] == "ok" and src.stats()["blocks_in"] >= 5)
        assert sd.streams[0].device == 2 and sd.streams[0].blocksize == 320
        assert src.stats()["overflows"] == 1
        x, t = ring.latest(0.1)
        assert t == 7.0 and np.all(x == np.float32(0.25))
        sd.plugged = False
        assert wait_until(lambda: src.stats()["state"] == "reopening")
        assert wait_until(lambda: "no such input device" in (src.stats()["error"] or ""))
        assert wait_until(lambda: src.stats()["reopens"] >= 3) and src.is_alive() and sd.rescans >= 2
        n = src.stats()["blocks_in"]
        sd.plugged = True
        assert wait_until(lambda: src.stats()["state"] == "ok" and src.stats()["blocks_in"] > n)
        assert src.stats()["error"] is None
    finally:
        stop.set()
        src.join(2)
    assert not src.is_alive() and all(s.closed.is_set() for s in sd.streams)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "usb mic" in warnings[0].getMessage()


class ErrorStream(FakeStream):
    """A stream whose ``active`` raises once it has run a little (PortAudio after a host error)."""

    checks = 0

    @property  # type: ignore[override]
    def active(self) -> bool:
        ErrorStream.checks += 1
        if ErrorStream.checks > 3:
            raise RuntimeError("Unanticipated host error")
        return True

    @active.setter
    def active(self, value: bool) -> None:
        pass


def test_audio_stream_error_reopens_instead_of_killing_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = FakeSounddevice()
    monkeypatch.setattr(sd, "InputStream", lambda **kw: sd.streams.append(ErrorStream(sd, **kw)) or sd.streams[-1])
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    cfg = MicrophoneConfig(source="usb mic", block_ms=20, reopen_min_s=0.02, reopen_max_s=0.08)
    src, stop = run_audio(cfg, AudioRing(2.0))
    try:
        assert wait_until(lambda: src.stats()["reopens"] >= 1)
        assert src.is_alive() and "stream error (Unanticipated host error)" in (src.stats()["error"] or "")
        assert wait_until(lambda: len(sd.streams) >= 2)  # opened again after the back-off
    finally:
        stop.set()
        src.join(2)
    assert not src.is_alive()


def test_audio_file_without_samples_fails_instead_of_spinning(tmp_path: Path) -> None:
    path = tmp_path / "tiny.wav"
    sf.write(str(path), np.zeros(2, np.float32), 48000)  # 2 samples at 48 kHz: none at 16 kHz
    src, _ = run_audio(MicrophoneConfig(source=str(path), loop=True), AudioRing(2.0))
    src.join(5)
    st = src.stats()
    assert not src.is_alive() and st["state"] == "failed" and "no audio samples" in st["error"]
    assert st["blocks_in"] == 0


def test_a_stream_host_that_never_answers_gives_up_within_the_stream_timeout(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    """A camera host that accepts the connection and stays silent: FFmpeg's own default (30 s) outlasts what the
    watchdog allows a source, so the open must end in an error after STREAM_TIMEOUT_S instead."""
    import socket

    monkeypatch.setattr(media, "STREAM_TIMEOUT_S", 1.0)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        t0 = time.monotonic()
        with pytest.raises(MediaError, match="cannot open"):
            open_video(f"rtsp://127.0.0.1:{srv.getsockname()[1]}/stream")
        assert time.monotonic() - t0 < 10.0  # (FFmpeg's default would be 30 s)
    finally:
        srv.close()


def test_one_failed_portaudio_initialisation_does_not_block_every_later_rescan() -> None:
    """PortAudio refuses to terminate when it is not initialised: the next rescan must still initialise it."""
    from edge.capture.audio import _rescan

    class PortAudio:
        def __init__(self) -> None:
            self.up, self.fail_next, self.inits = True, True, 0

        def _terminate(self) -> None:
            if not self.up:
                raise RuntimeError("PortAudio not initialized")
            self.up = False

        def _initialize(self) -> None:
            self.inits += 1
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("Error querying host APIs")
            self.up = True

    pa = PortAudio()
    _rescan(pa)  # the first initialisation fails
    assert not pa.up
    _rescan(pa)  # terminate raises now: initialise anyway
    assert pa.up and pa.inits == 2


def test_an_unexpected_file_error_is_a_failed_source_not_a_silent_dead_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error other than MediaError (a folder the service user cannot enter) ends the thread with state failed
    and a reason; a capture thread that died without one is shown as failed, never as ok."""
    from edge.pipeline.status import source_stats

    def denied(*_a: Any, **_k: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/srv/media/clip.wav")

    monkeypatch.setattr("edge.capture.audio.read_audio_file", denied)
    ring, stop = AudioRing(2.0), threading.Event()
    src = AudioSource(MicrophoneConfig(source=str(tmp_path / "clip.wav")), ring, stop)
    src.start()
    src.join(5)
    assert src.stats()["state"] == "failed" and "PermissionError" in src.stats()["error"]
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    fake = SimpleNamespace(ident=dead.ident, is_alive=dead.is_alive,
                           stats=lambda: {"state": "starting", "error": None})
    got = source_stats(SimpleNamespace(video=None, audio=fake))  # type: ignore[arg-type]
    assert got["microphone"] == {"state": "failed", "error": "capture thread stopped unexpectedly"}
    # gone on the service's own stop (SIGTERM): not a fault in the retained offline status
    fake.stopped_on_request = True
    got = source_stats(SimpleNamespace(video=None, audio=fake))  # type: ignore[arg-type]
    assert got["microphone"]["state"] == "ok"


def test_a_source_that_left_on_the_services_stop_is_not_a_fault(tmp_path: Path) -> None:
    """Every clean shutdown's retained offline status said the camera and microphone had failed."""
    import soundfile as sf

    from edge.pipeline.status import source_stats

    sf.write(tmp_path / "loop.wav", np.zeros(16000, np.float32), 16000)
    stop = threading.Event()
    live = AudioSource(MicrophoneConfig(source=str(tmp_path / "loop.wav"), loop=True), AudioRing(2.0), stop)
    live.start()
    time.sleep(0.3)
    stop.set()
    live.join(5)
    assert live.stopped_on_request
    assert source_stats(SimpleNamespace(video=None, audio=live))["microphone"]["state"] == "ok"  # type: ignore[arg-type]


def test_a_looped_one_frame_video_is_paced_not_spun(tmp_path: Path) -> None:
    """After the end of a looping file the next loop started at once: a one-frame file (or a still image) looped
    thousands of times a second, and every loop of a short clip ran one frame short."""
    import cv2

    clip = tmp_path / "one.avi"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    vw.write(np.full((48, 64, 3), 100, np.uint8))
    vw.release()
    stop = threading.Event()
    src = VideoSource(CameraConfig(source=str(clip), loop=True, pace="realtime"), DropQueue(2), stop)
    src.start()
    time.sleep(2.0)
    stop.set()
    src.join(5)
    n = src.stats()["frames_in"]
    assert 15 <= n <= 25, n  # 10 frames a second, as the file says
