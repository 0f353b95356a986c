"""The staff-voice gates fail safe: odd input (a NaN, a DC offset, a dead staff mic, silence) drops the window;
it never hands staff speech to the model. A non-finite sample gives no voice reading."""

from __future__ import annotations

import numpy as np
from gate_signals import RATE, array_signal, babble

from edge.voicegate.gate import ChannelGate, DirectionGate

POS = np.array([[0.0, 0.0], [0.1, 0.0]])


def _staff_channel_window(level: float = 1.0) -> np.ndarray:
    """Two mics, 2 s: staff speech loud on the staff mic (channel 1), faint on the customer mic (channel 0)."""
    staff = babble(2.0, 180.0, seed=3) * level
    noise = np.random.default_rng(0).normal(0, 0.001, (staff.size, 2)).astype(np.float32)
    return np.stack([0.1 * staff, staff], axis=1) + noise


def test_channel_gate_drops_staff_speech_whatever_is_wrong_with_the_staff_mic() -> None:
    gate = ChannelGate(staff_channel=1, margin_db=3.0)
    clean = _staff_channel_window()
    assert gate.decide(clean).verdict == "staff"
    nan = clean.copy()
    nan[5000, 1] = np.nan
    dc = clean * 0.1
    dc[:, 1] += 0.03  # a DC offset on the staff mic raised the floor speech was measured against
    dead = clean.copy()
    dead[:, 1] = 0.0  # unplugged or muted: every frame looked louder on the customer side
    for window, verdict in ((nan, "invalid"), (dc, "staff"), (dead, "fault")):
        d = gate.decide(window)
        assert d.audio is None and d.verdict == verdict, (verdict, d.verdict)


def test_direction_gate_drops_a_window_with_a_nan_or_without_speech() -> None:
    gate = DirectionGate([(0.0, 0.0), (0.1, 0.0)], (0.0, 60.0), (120.0, 180.0))
    staff = array_signal(babble(2.0, 180.0, seed=4), 30.0, POS)
    staff[100, 1] = np.nan
    assert gate.decide(staff).audio is None and gate.decide(staff).verdict == "invalid"
    quiet = np.random.default_rng(1).normal(0, 0.001, (2 * RATE, 2)).astype(np.float32)
    d = gate.decide(quiet)
    assert d.verdict == "silent" and d.audio is None


def test_a_non_finite_sample_gives_no_voice_reading() -> None:
    from edge.runtime import load_manifest, load_model
    from edge.voice.model import VoiceAnalyzer

    an = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion", threads=1))  # shipped in models/ (committed)
    x = babble(2.0, 150.0, seed=5)
    assert an.analyze(x, 2.0) is not None
    x[1000] = np.inf
    assert an.analyze(x, 2.0) is None


def test_a_dead_staff_mic_with_a_trace_of_noise_or_hum_is_a_fault_not_the_customer() -> None:
    """Only digital silence was caught: a dead microphone's dither, self-noise or mains hum made every staff frame
    look the customer's, and staff speech went to the model."""
    gate = ChannelGate(staff_channel=1, margin_db=3.0)
    clean = _staff_channel_window()
    t = np.arange(clean.shape[0]) / RATE
    rng = np.random.default_rng(5)
    traces = {"dither": rng.integers(-1, 2, clean.shape[0]) / 32768.0,
              "self-noise": rng.normal(0, 10 ** (-90 / 20), clean.shape[0]),
              "hum": 10 ** (-70 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 50 * t)}
    for name, trace in traces.items():
        dead = clean.copy()
        dead[:, 1] = trace.astype(np.float32)
        d = gate.decide(dead)
        assert d.audio is None and d.verdict == "fault", (name, d.verdict)
    # a working staff mic that only hears the customer (crosstalk 20 dB down) is no fault: the customer passes
    cust = babble(2.0, 210.0, seed=6)
    ok = np.stack([cust, 0.1 * cust], axis=1) + rng.normal(0, 0.001, (cust.size, 2)).astype(np.float32)
    assert gate.decide(ok).verdict == "customer"


def test_an_array_whose_channels_carry_one_signal_or_a_dead_mic_is_a_fault() -> None:
    """One microphone copied onto every channel reads as coherence 1 straight ahead (in a 2-mic array's customer
    sector): staff speech passed. A dead array microphone is a fault too."""
    gate = DirectionGate([(0.0, 0.0), (0.1, 0.0)], (0.0, 45.0), (55.0, 180.0))
    staff = babble(2.0, 180.0, seed=7)
    copied = np.stack([staff, staff], axis=1)
    d = gate.decide(copied)
    assert d.audio is None and d.verdict == "fault", d.verdict
    working = array_signal(staff, 10.0, POS) + np.random.default_rng(8).normal(0, 1e-4, (staff.size, 2))
    assert gate.decide(working.astype(np.float32)).verdict == "staff"
    dead = working.copy()
    dead[:, 1] = np.random.default_rng(9).normal(0, 10 ** (-90 / 20), staff.size)
    assert gate.decide(dead.astype(np.float32)).verdict == "fault"
