"""Streamed voice features: overlapping windows reuse mel frames and still equal the training features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.voice.features import HOP, SAMPLE_RATE, log_mel, normalize_gain, window_features
from edge.voice.stream import StreamFeatures

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAVDESS = DATA / "speech" / "ravdess"
WIN = 2 * SAMPLE_RATE
TOL = 1e-4  # float32 rounding of the gain applied before vs after the FFT; feature values span about -1..3


def _speech(n_files: int = 12) -> np.ndarray:
    """Real speech: RAVDESS clips of held-out actors back to back (silences between them included)."""
    sf = pytest.importorskip("soundfile")
    files = sorted(RAVDESS.glob("Actor_2*/*.flac"))[::9][:n_files]
    if not files:
        pytest.skip(f"research data not present: {RAVDESS} (see ../shared/data/README.md)")
    return np.concatenate([sf.read(f, dtype="float32")[0] for f in files])


def test_streamed_windows_equal_training_features_and_reuse_frames() -> None:
    x = _speech()
    st = StreamFeatures()
    hop = SAMPLE_RATE // 4
    worst = 0.0
    for end in range(WIN, x.size + 1, hop):
        ref = window_features(x[end - WIN:end], 2.0)
        got = st.features(x[end - WIN:end], end - WIN)
        assert got.shape == ref.shape and got.dtype == np.float32
        worst = max(worst, float(np.abs(got - ref).max()))
    assert worst < TOL
    n = len(range(WIN, x.size + 1, hop))
    assert st.frames_computed == 198 + (n - 1) * 25  # each later window computes only its 25 newest frames
    assert st.frames_reused == (n - 1) * 173


def test_content_not_position_decides_reuse() -> None:
    x = _speech(4)
    st = StreamFeatures()
    st.features(x[:WIN], 0)
    other = x[WIN:2 * WIN]  # claims to continue the stream but holds other audio
    got = st.features(other, HOP * 25)
    assert st.frames_reused == 0
    np.testing.assert_allclose(got, window_features(other, 2.0), atol=TOL)
    st.features(x[HOP * 7 + 3:HOP * 7 + 3 + WIN], HOP * 7 + 3)  # off the 10 ms grid: recomputed whole
    assert st.frames_reused == 0
    st.reset()
    st.features(x[:WIN], 0)
    st.features(x[HOP:HOP + WIN], HOP)
    assert st.frames_reused == 197


def test_window_the_reference_clips_is_computed_exactly() -> None:
    x = _speech(4)[:WIN] * np.float32(0.05)  # quiet speech: a large gain
    x[SAMPLE_RATE] = 0.5  # one click: too short to move the level, so the gained window clips there
    assert np.abs(normalize_gain(x)).max() == 1.0
    st = StreamFeatures()
    np.testing.assert_array_equal(st.features(x, 0), log_mel(normalize_gain(x)))


def test_silence_has_no_gain_and_matches() -> None:
    st = StreamFeatures()
    z = np.zeros(WIN, np.float32)
    np.testing.assert_array_equal(st.features(z, 0), window_features(z, 2.0))


def test_analyzer_streamed_readings_match_whole_windows() -> None:
    from edge.runtime import ModelError, load_manifest, load_model
    from edge.voice.model import VoiceAnalyzer

    try:
        whole = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion_cnn", threads=1))
        streamed = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion_cnn", threads=1))
    except ModelError as exc:
        pytest.skip(f"voice_emotion_cnn model not available: {exc}")
    x = _speech()
    readings = 0
    for end in range(WIN, x.size + 1, SAMPLE_RATE // 4):
        a = whole.analyze(x[end - WIN:end], end / SAMPLE_RATE)
        b = streamed.analyze(x[end - WIN:end], end / SAMPLE_RATE, end=end)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            readings += 1
            assert int(a.probs.argmax()) == int(b.probs.argmax())
            np.testing.assert_allclose(a.probs, b.probs, atol=0.02)  # at most a few int8 output steps apart
    assert readings > 20 and streamed.frontend.stream.frames_reused > 0
    streamed.reset()
    assert streamed.frontend.stream.frames_reused > 0 and streamed.frontend.stream._x is None


def test_stream_window_ends_on_the_frame_grid_and_holds_back_the_rest() -> None:
    from edge.voice.stream import StreamWindow

    x = np.arange(50_000, dtype=np.float32)
    sw = StreamWindow(WIN)
    sw.push(x[:9_600])
    span, end, late = sw.latest()
    assert (span.size, end, late) == (9_600, 9_600, 0)  # not yet a full window: the caller decides
    sw.push(x[9_600:33_007])  # chunk sizes as a sound card delivers them, off the 10 ms grid
    span, end, late = sw.latest()
    assert late == 33_007 % HOP and end == 33_007 - late and end % HOP == 0
    np.testing.assert_array_equal(span, x[end - WIN:end])  # exactly the window that ends at `end`
    sw.push(x[33_007:37_100])
    span2, end2, _ = sw.latest()
    assert end2 % HOP == 0 and (end2 - end) % HOP == 0
    np.testing.assert_array_equal(span2, x[end2 - WIN:end2])
    sw.clear()  # a pause: nothing held, positions keep counting
    sw.push(x[37_100:40_000])
    span3, end3, _ = sw.latest()
    assert end3 == 40_000 - 40_000 % HOP and span3.size < WIN


def test_clip_evaluation_shares_frames_like_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.runtime import ModelError, load_manifest, load_model
    from edge.voice.model import VoiceAnalyzer

    try:
        shared = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion_cnn", threads=1))
        whole = VoiceAnalyzer(load_model(load_manifest(), "voice_emotion_cnn", threads=1))
    except ModelError as exc:
        pytest.skip(f"voice_emotion_cnn model not available: {exc}")
    monkeypatch.setattr(whole.frontend.stream, "features", lambda x, start: window_features(x, 2.0))
    x = _speech(6)
    a, b = shared.clip_model_probs(x), whole.clip_model_probs(x)
    assert a is not None and b is not None and a[2] == b[2] > 5
    assert shared.frontend.stream.frames_reused > 0
    np.testing.assert_allclose(a[0], b[0], atol=0.01)
    assert int(np.argmax(a[0])) == int(np.argmax(b[0]))
