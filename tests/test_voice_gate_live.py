"""Issue 23, item 1: multichannel live capture (a fake sounddevice stream, a multichannel file) with the staff gate."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from gate_signals import RATE, counter_two_mics
from test_capture import FakeSounddevice, run_audio, wait_until

from edge.capture import media
from edge.config import MicrophoneConfig, parse_config
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.pipeline.status import health_body
from edge.queues import AudioRing
from edge.types import Reading

ID = {"site_id": "s", "kiosk_id": "k"}
WIN_S = 1.0


class RecordingVoice:
    """A voice analyzer that records what reaches it (mono samples and stream end) and reads nothing."""

    window_s = WIN_S

    def __init__(self) -> None:
        self.seen: list[tuple[int, np.ndarray]] = []

    def reset(self) -> None:
        pass

    def analyze(self, samples: np.ndarray, t: float, end: int | None = None) -> Reading | None:
        assert samples.ndim == 1, "the voice model must get mono audio"
        self.seen.append((int(end or 0), samples.copy()))
        return None


def test_ring_keeps_channels_apart_and_refuses_the_wrong_shape() -> None:
    ring = AudioRing(1.0, RATE, channels=3)
    block = np.tile(np.array([[0.1, 0.2, 0.3]], np.float32), (400, 1))
    ring.write(block, 1.0)
    x, t = ring.read_new()
    assert x.shape == (400, 3) and t == 1.0 and np.allclose(x[:, 2], 0.3)
    ring.write(np.tile(block, (50, 1)), 2.0)  # 20000 samples into a 16000 ring: the oldest overwritten
    x, _ = ring.read_new()
    assert x.shape == (16000, 3) and ring.overrun_samples == 4000
    with pytest.raises(ValueError, match=r"shape \(400,\) for a 3-channel ring"):
        ring.write(block[:, 0], 3.0)
    mono = AudioRing(1.0, RATE)
    mono.write(np.ones(10, np.float32), 1.0)
    assert mono.read_new()[0].shape == (10,)


def test_device_opened_with_the_configured_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    sd = FakeSounddevice(usb_channels=4)
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    ring = AudioRing(2.0, RATE, channels=4)
    src, stop = run_audio(MicrophoneConfig(source="usb mic", channels=4, block_ms=20), ring)
    try:
        assert wait_until(lambda: src.stats()["state"] == "ok" and src.stats()["blocks_in"] >= 3)
        assert sd.streams[0].channels == 4
        x, _ = ring.latest(0.05)
        assert x.shape == (800, 4) and np.all(x[:, 0] == np.float32(0.25)) and np.all(x[:, 1:] == np.float32(0.5))
    finally:
        stop.set()
        src.join(2)


def test_device_without_16_khz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The config said other rates are resampled; a device that does not capture at 16 kHz failed to open with
    PortAudio's bare message. It says which rate and what to use instead; other open errors keep their own text."""
    sd = FakeSounddevice()
    sd.rates = {44100, 48000}
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    caplog.set_level(logging.WARNING, logger="edge.capture.audio")
    cfg = MicrophoneConfig(source="usb mic", block_ms=20, reopen_min_s=0.02, reopen_max_s=0.05)
    src, stop = run_audio(cfg, AudioRing(2.0, RATE))
    try:
        assert wait_until(lambda: src.stats()["reopens"] >= 2)
        err = src.stats()["error"]
        assert "cannot capture 1 channel(s) at 16000 Hz" in err and "plughw:" in err and not sd.streams, err
    finally:
        stop.set()
        src.join(2)

    def busy(**_: Any) -> None:
        raise RuntimeError("Device unavailable [PaErrorCode -9985]")

    sd2 = FakeSounddevice()
    sd2.check_input_settings = busy  # type: ignore[method-assign]
    monkeypatch.setattr(media, "_sounddevice", lambda: sd2)
    src, stop = run_audio(cfg, AudioRing(2.0, RATE))
    try:
        assert wait_until(lambda: src.stats()["reopens"] >= 1)
        err = src.stats()["error"]
        assert "Device unavailable" in err and "16000 Hz" not in err, err
    finally:
        stop.set()
        src.join(2)


def test_device_with_fewer_channels_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    sd = FakeSounddevice(usb_channels=1)
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    caplog.set_level(logging.WARNING, logger="edge.capture.audio")
    cfg = MicrophoneConfig(source="usb mic", channels=2, block_ms=20, reopen_min_s=0.02, reopen_max_s=0.05)
    src, stop = run_audio(cfg, AudioRing(2.0, RATE, channels=2))
    try:
        assert wait_until(lambda: src.stats()["reopens"] >= 2)
        st = src.stats()
        assert st["state"] == "reopening" and st["blocks_in"] == 0 and not sd.streams
        assert st["error"] == "microphone 'usb mic': offers 1 input channel(s), microphone.channels = 2 (the " \
                              "staff-voice gate needs them all)"
        sd.usb_channels = 2  # the right microphone is plugged in: capture starts
        assert wait_until(lambda: src.stats()["state"] == "ok" and src.stats()["blocks_in"] > 0)
    finally:
        stop.set()
        src.join(2)
    assert "offers 1 input channel(s)" in caplog.text


def test_file_source_keeps_channels_and_refuses_too_few(tmp_path: Path) -> None:
    audio, _ = counter_two_mics()
    sf.write(tmp_path / "two.wav", audio, RATE, subtype="FLOAT")
    ring = AudioRing(10.0, RATE, channels=2)
    src, _ = run_audio(MicrophoneConfig(source=str(tmp_path / "two.wav"), channels=2, pace="fast"), ring)
    src.join(10)
    assert src.stats()["state"] == "ended"
    x, _ = ring.latest(6.5)
    assert x.shape == (audio.shape[0], 2) and np.allclose(x, audio, atol=1e-6)
    sf.write(tmp_path / "one.wav", audio[:, 0], RATE)
    src, _ = run_audio(MicrophoneConfig(source=str(tmp_path / "one.wav"), channels=2), AudioRing(2.0, RATE, 2))
    src.join(5)
    assert src.stats()["state"] == "failed"
    assert src.stats()["error"].endswith("one.wav': has 1 channel(s), microphone.channels = 2")


def _service(mic: dict[str, Any], staff_channel: int | None) -> tuple[Service, RecordingVoice]:
    privacy = {} if staff_channel is None else {"staff_audio_channel": staff_channel}
    cfg = parse_config({"identity": ID, "camera": {"enabled": False}, "mqtt": {"enabled": False},
                        "microphone": {"channels": 2, "block_ms": 50, **mic},
                        "analysis": {"voice_hop_s": 0.1}, "privacy": privacy})
    voice = RecordingVoice()
    return Service(cfg, Analyzers(voice=voice)), voice  # type: ignore[arg-type]


def _check_gated(voice: RecordingVoice, audio: np.ndarray, spans: dict[str, tuple[float, float]],
                 period: int) -> None:
    """No window inside the staff's speech reached the model; windows inside the customer's did, as channel 1."""
    win = int(WIN_S * RATE)

    def inside(end: int, who: str) -> bool:
        e = end % period
        return e >= win and spans[who][0] * RATE <= e - win and e <= spans[who][1] * RATE

    staff = [end for end, _ in voice.seen if inside(end, "staff")]
    cust = [(end, x) for end, x in voice.seen if inside(end, "customer")]
    assert not staff, f"staff-only windows reached the voice model (ends {staff[:5]})"
    assert len(cust) >= 8, f"only {len(cust)} customer windows analysed"
    for end, x in cust:
        e = end % period
        assert np.allclose(x, audio[e - win:e, 1], atol=1e-6), "the model must get the customer microphone"


def test_live_service_gates_staff_windows_from_a_two_channel_file(tmp_path: Path) -> None:
    audio, spans = counter_two_mics()
    path = tmp_path / "counter.wav"
    sf.write(path, audio, RATE, subtype="FLOAT")
    svc, voice = _service({"source": str(path)}, staff_channel=0)
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    _check_gated(voice, audio, spans, period=10 ** 9)
    drops = health_body(svc)["drops"]
    assert svc.gate.counts["staff"] >= 10 and svc.latency.count("gate") > len(voice.seen)
    # health carries the gate's equipment faults, never how often the staff spoke (staff talk time per interval)
    assert "voice_gated_fault" in drops and not any(k in drops for k in ("voice_gated_staff", "voice_gated_ambiguous"))


def test_live_service_gates_staff_windows_from_a_fake_sounddevice_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    audio, spans = counter_two_mics()
    sd = FakeSounddevice(usb_channels=2, signal=audio)
    monkeypatch.setattr(media, "_sounddevice", lambda: sd)
    svc, voice = _service({"source": "usb mic"}, staff_channel=0)
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    try:
        assert wait_until(lambda: sd.streams and sd.streams[0].closed.is_set() is False and
                          svc.audio is not None and svc.audio.stats()["blocks_in"] * 800 >= 3 * audio.shape[0],
                          timeout=30)  # the fake pumps at 4x real time: three passes
    finally:
        svc.stop.set()
        runner.join(10)
    assert sd.streams[0].channels == 2
    _check_gated(voice, audio, spans, period=audio.shape[0])


def test_without_a_gate_staff_windows_do_reach_the_model(tmp_path: Path) -> None:
    """The control: the same recording with no staff channel configured is analysed throughout (a mono mix)."""
    audio, spans = counter_two_mics()
    path = tmp_path / "counter.wav"
    sf.write(path, audio, RATE, subtype="FLOAT")
    svc, voice = _service({"source": str(path), "pace": "realtime"}, staff_channel=None)
    t0 = time.monotonic()
    svc.run()
    assert time.monotonic() - t0 < 30
    win = int(WIN_S * RATE)
    staff = [(e, x) for e, x in voice.seen if spans["staff"][0] * RATE <= e - win and e <= spans["staff"][1] * RATE]
    assert len(staff) >= 8 and all(np.allclose(x, audio[e - win:e].mean(axis=1), atol=1e-6) for e, x in staff)
