"""The Whisper-encoder voice path: features, front ends, kiosk conditions, corpora handling, head, export parity."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge.runtime import ModelError
from edge.voice.frontends import LogMel64, WhisperLogMel80, make_frontend
from edge.voice.whisper_mel import slaney_filterbank, whisper_log_mel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _speechlike(n: int = 32000, seed: int = 0) -> np.ndarray:
    """Harmonic tone bursts with pauses: enough structure for the VAD and a mel spectrum."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 8))
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.2).astype(float)
    return (0.1 * x * env + 0.002 * rng.standard_normal(n)).astype(np.float32)


def test_whisper_mel_shape_range_and_gain_invariance() -> None:
    """A 2 s window gives (200, 80) within Whisper's scaled range; any gain gives the same features."""
    x = _speechlike()
    f = whisper_log_mel(x)
    assert f.shape == (200, 80) and f.dtype == np.float32
    assert f.min() >= f.max() - 2.0 - 1e-6  # at most 8 decades below the window's max, scaled by 1/4
    np.testing.assert_allclose(whisper_log_mel(x * 0.1), f, atol=1e-3)  # -20 dB: -44 dBFS RMS
    np.testing.assert_allclose(whisper_log_mel(x * 8.0), f, atol=1e-3)
    with pytest.raises(ValueError, match="at least 400"):
        whisper_log_mel(np.zeros(100, np.float32))


def test_slaney_filterbank_covers_the_band_with_unit_area_triangles() -> None:
    """80 triangles over 0-8 kHz, each with area 1 on the Hz axis (Slaney normalisation)."""
    fb = slaney_filterbank()
    assert fb.shape == (201, 80) and (fb >= 0).all()
    hz = np.linspace(0, 8000, 201)
    areas = np.trapezoid(fb, hz, axis=0) if hasattr(np, "trapezoid") else np.trapz(fb, hz, axis=0)
    assert np.median(areas) == pytest.approx(1.0, rel=0.05)


def test_front_end_is_chosen_by_the_manifest_and_checked_against_the_input() -> None:
    """logmel64 by default, whisper-logmel80 when declared; a mismatch or an unknown name is a ModelError."""
    assert isinstance(make_frontend("logmel64", (1, 198, 64, 1)), LogMel64)
    fe = make_frontend("whisper-logmel80", (1, 200, 80))
    assert isinstance(fe, WhisperLogMel80) and fe.window_samples(200) == 32000
    assert LogMel64().window_samples(198) == 32000
    with pytest.raises(ModelError, match="not \\(1, frames, 80"):
        make_frontend("whisper-logmel80", (1, 198, 64, 1))
    with pytest.raises(ModelError, match="known"):
        make_frontend("mfcc13", (1, 100, 13))


def test_kiosk_conditions_keep_length_and_level() -> None:
    """Reverb, codec and gain keep the clip length; reverb keeps the level; gain clips at full scale."""
    from edge.train.voice_kiosk import codec, condition, gain_db, reverb, room_impulse

    x = _speechlike(24000)
    rng = np.random.default_rng(0)
    h = room_impulse(0.4, rng)
    decay = np.abs(h[int(0.35 * 16000):int(0.45 * 16000)]).mean() / np.abs(h[800:2400]).mean()
    assert decay < 0.05  # about -60 dB per RT60 into the tail
    y = reverb(x, 0.4, rng)
    assert y.shape == x.shape and np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.02)
    c = codec(x, 12)
    assert c.shape == x.shape and np.corrcoef(c, x)[0, 1] > 0.8
    assert np.abs(gain_db(x, 40)).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown condition"):
        condition(x, "underwater", rng, [])


def test_trim_silence_removes_digital_padding_only() -> None:
    """Leading/trailing exact zeros go (ASED's emotion-specific padding); quiet speech inside stays."""
    from edge.train.voice_corpora import trim_silence

    x = np.concatenate([np.zeros(500), [0.01, 0.0, 0.02], np.zeros(900)]).astype(np.float32)
    assert trim_silence(x).tolist() == pytest.approx([0.01, 0.0, 0.02])
    assert trim_silence(np.zeros(10, np.float32)).size == 10


def test_clip_windows_are_the_windows_the_service_analyses() -> None:
    """voice_fe.clip_windows picks the same windows and ratios as VoiceAnalyzer.clip_model_probs."""
    from edge.train.voice_fe import clip_windows
    from edge.voice.model import VoiceAnalyzer
    from edge.voice.vad import Vad

    x = np.concatenate([_speechlike(40000, 1), np.zeros(16000, np.float32), _speechlike(20000, 2)])
    seen: list[np.ndarray] = []

    class Probe(VoiceAnalyzer):
        def model_probs(self, samples: np.ndarray, end: int | None = None) -> np.ndarray:
            seen.append(np.array(samples))
            return np.full(7, 1 / 7)

    spec = SimpleNamespace(labels=("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear"),
                           output=SimpleNamespace(shape=(1, 7)), features="whisper-logmel80")
    probe = Probe(SimpleNamespace(input_shape=(1, 200, 80), spec=spec))
    clip = probe.clip_model_probs(x, 0.5)
    wins, ratios = clip_windows(x, Vad(2), 0.5)
    assert clip is not None and len(wins) == len(seen) == clip[2] > 2
    assert all(np.array_equal(a, b) for a, b in zip(wins, seen, strict=True))
    assert float(np.mean(ratios)) == pytest.approx(clip[1])


def test_head_weights_and_clip_aggregation() -> None:
    """Balanced weights give each corpus and class an equal share; clips average windows by speech ratio."""
    from edge.train.voice_head import balance_weights, clip_probs, loco_metrics

    y = np.array([0, 0, 0, 4, 1, 1])
    g = np.array(["a", "a", "a", "a", "b", "b"])
    w = balance_weights(y, g)
    assert w[:3].sum() == pytest.approx(w[3]) and w[:4].sum() == pytest.approx(w[4:].sum())
    pw = np.array([[1.0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0, 0, 0], [0, 1.0, 0, 0, 0, 0, 0]])
    p, ok = clip_probs(pw, np.array([0, 0, 1]), np.array([0.75, 0.25, 1.0]), 3)
    assert p[0, 0] == pytest.approx(0.75) and p[0, 4] == pytest.approx(0.25) and ok.tolist() == [True, True, False]
    assert p[2] == pytest.approx(np.full(7, 1 / 7))  # no reading counts as chance
    m = loco_metrics(np.array([0, 4, 1]), p)  # the angry clip's agitated mass (0) is below the neutral clip's
    # and the pair with the clip without a reading counts 0.5 (its 3/7 agitated mass used to rank it)
    assert m["agitated_auc"] == pytest.approx(0.25) and m["n"] == 3 and m["clips_without_reading"] == 1
    assert m["per_class_recall"]["happy"] == pytest.approx(1 / 7, abs=1e-4)  # chance, not "neutral" (0)
    # a clip without a reading scores chance (1/4) in the 4-class UA for any true class, not "neutral"
    uniform = np.full((2, 7), 1 / 7)
    assert loco_metrics(np.array([0, 3]), uniform)["recall4"] == {"neutral": 0.25, "sad": 0.25}


def test_head_dense_layer_equals_the_fitted_classifier() -> None:
    """The exported Dense kernel/bias reproduce scikit-learn's probabilities (standardisation folded in)."""
    pytest.importorskip("sklearn", reason="needs the train or eval extra (scikit-learn)")
    from edge.train.voice_head import Head

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (300, 12))
    y = np.array([0, 1, 4])[(x[:, 0] > 3).astype(int) + (x[:, 1] > 4).astype(int)]
    h = Head(0.5).fit(x, y, np.ones(len(y)))
    ref = h.lr.predict_proba((x - h.mu) / h.sd)
    p = h.probs(x)
    np.testing.assert_allclose(p[:, [0, 1, 4]], ref, atol=1e-5)
    assert p[:, [2, 3, 5, 6]].max() < 1e-9  # classes never seen get no mass
    two = Head(0.5).fit(x, np.where(y == 0, 0, 4), np.ones(len(y)))  # binary: scikit-learn keeps one logit
    np.testing.assert_allclose(two.probs(x)[:, [0, 4]], two.lr.predict_proba((x - two.mu) / two.sd), atol=1e-5)


def test_config_chooses_the_voice_model() -> None:
    """models.voice_model picks the Whisper-encoder model (default) or the lighter CNN; status names the one in use."""
    from edge.config import parse_config
    from edge.pipeline.analyzers import build_analyzers
    from edge.runtime import load_manifest

    manifest = load_manifest()
    if not {"voice_emotion", "voice_emotion_cnn"} <= set(manifest.models):
        pytest.skip("both voice models are committed in models/; this checkout lacks one")
    base = {"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False}, "analysis": {"face": False}}
    default = build_analyzers(parse_config(base), manifest)
    assert default.voice is not None and default.voice.frontend.name == "whisper-logmel80"
    assert default.versions == {"voice_emotion": manifest.get("voice_emotion").version}
    cnn = build_analyzers(parse_config(base | {"models": {"voice_model": "voice_emotion_cnn"}}), manifest)
    assert cnn.voice is not None and cnn.voice.frontend.name == "logmel64" and "voice_emotion_cnn" in cnn.versions
    assert cnn.voice.window_samples == default.voice.window_samples == 32000


def test_whisper_stream_equals_whole_windows_and_survives_gaps() -> None:
    """Overlapping windows sharing raw frames equal whole-window features; a gap or another grid recomputes."""
    from edge.voice.whisper_mel import WhisperStream

    x = np.concatenate([_speechlike(64000, 3), _speechlike(32000, 4) + 0.01])  # a DC step: the mean matters
    st = WhisperStream()
    for end in list(range(32000, x.size + 1, 4000)) + [x.size - 80]:  # the last one is off the 10 ms grid
        w = x[end - 32000:end]
        np.testing.assert_allclose(st.features(w, end - 32000), whisper_log_mel(w), atol=2e-5)
    assert st.frames_reused > 1000
    before = st.frames_reused
    y = _speechlike(32000, 9)  # another stream at a position that would line up: content decides, not the count
    np.testing.assert_allclose(st.features(y, x.size - 32000 + 4000), whisper_log_mel(y), atol=2e-5)
    assert st.frames_reused == before


def test_analyzer_streamed_readings_match_whole_windows_whisper() -> None:
    """The service's streamed windows give the readings of whole windows with the shipped Whisper-encoder model."""
    from edge.runtime import ModelError, load_manifest, load_model
    from edge.voice.model import VoiceAnalyzer

    try:
        whole = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion", threads=1))
        streamed = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion", threads=1))
    except ModelError as exc:
        pytest.skip(f"voice_emotion model not available: {exc}")
    if whole.frontend.name != "whisper-logmel80":
        pytest.skip("the declared voice model is not the Whisper-encoder one")
    x = np.concatenate([_speechlike(48000, 5), _speechlike(48000, 6)])
    diffs = []
    for end in range(32000, x.size + 1, 4000):
        a = whole.analyze(x[end - 32000:end], end / 16000)
        b = streamed.analyze(x[end - 32000:end], end / 16000, end=end)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            diffs.append(float(np.abs(a.probs - b.probs).max()))
    assert len(diffs) > 10 and streamed.frontend.stream.frames_reused > 1000  # shared frames, not recomputed
    # features agree to 2e-5; where that flips one int8 input step the model moves a window's probabilities by up to
    # ~0.09 (0.2.2, measured with 2e-5 noise on whole windows), so most windows must be equal, none far off
    assert float(np.median(diffs)) <= 0.005 and max(diffs) <= 0.1, diffs
