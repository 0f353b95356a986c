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
