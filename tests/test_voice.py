"""Voice modality: feature parity, VAD gating, label mapping and a real-clip smoke test of the int8 model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge.types import EMOTIONS
from edge.voice.features import N_MELS, SAMPLE_RATE, log_mel, n_frames, normalize_gain, window_features
from edge.voice.model import VoiceAnalyzer, label_index_map
from edge.voice.vad import Vad

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CREMA = DATA / "speech" / "crema-d"
FRAMES = n_frames(2 * SAMPLE_RATE)


class FakeModel:
    """Stands in for edge.runtime.Model: records inputs, returns a fixed distribution over its labels."""

    def __init__(self, labels: tuple[str, ...] = EMOTIONS, hot: int = 0) -> None:
        self.input_shape = (1, FRAMES, N_MELS, 1)
        self.spec = SimpleNamespace(labels=labels, output=SimpleNamespace(shape=(1, len(labels))))
        self.hot = hot
        self.inputs: list[np.ndarray] = []

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.inputs.append(np.array(x))
        y = np.full((1, len(self.spec.labels)), 0.02, np.float32)
        y[0, self.hot] = 1.0 - 0.02 * (len(self.spec.labels) - 1)
        return y


def _analyzer(model: Any) -> VoiceAnalyzer:
    return VoiceAnalyzer(model)


def _read(path: Path) -> np.ndarray:
    sf = pytest.importorskip("soundfile")
    audio, sr = sf.read(path, dtype="float32")
    assert sr == SAMPLE_RATE
    return np.asarray(audio, np.float32)


def _crema_clip(name: str = "1001_DFA_ANG_XX.flac") -> np.ndarray:
    if not (CREMA / name).is_file():
        pytest.skip(f"research data not present: {CREMA / name} (see ../shared/data/README.md)")
    return _read(CREMA / name)


def _espeak(text: str) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    wav = subprocess.run([exe, "--stdout", "-s", "150", text], check=True, capture_output=True).stdout
    sf = pytest.importorskip("soundfile")
    import io

    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    audio = np.asarray(audio, np.float32).reshape(-1)
    if sr != SAMPLE_RATE:  # espeak-ng speaks at 22.05 kHz: linear resample is enough for a VAD test
        t = np.arange(int(audio.size * SAMPLE_RATE / sr)) / SAMPLE_RATE
        audio = np.interp(t, np.arange(audio.size) / sr, audio).astype(np.float32)
    return audio


def _real_model() -> Any:
    from edge.runtime import ModelError, load_manifest, load_model

    try:
        return load_model(load_manifest(), "voice_emotion", threads=1)
    except ModelError as exc:
        pytest.skip(f"voice_emotion model not available: {exc} (python -m edge.train.voice)")


# ------------------------------------------------------------------ features
def test_log_mel_shape_and_dtype() -> None:
    x = np.random.default_rng(0).standard_normal(SAMPLE_RATE * 2).astype(np.float32) * 0.1
    f = log_mel(x)
    assert f.shape == (FRAMES, N_MELS) and f.dtype == np.float32
    assert np.isfinite(f).all()


def test_gain_normalisation_removes_level() -> None:
    x = _espeak("Where is my parcel")[: 2 * SAMPLE_RATE]
    a = window_features(x * 0.01, 2.0)
    b = window_features(x * 0.5, 2.0)
    assert np.abs(a - b).max() < 0.05  # 34 dB apart, same features


def test_feature_parity_training_vs_runtime() -> None:
    from edge.train.voice import clip_windows
    from edge.train.voice_data import Clip, _crop, build_features

    audio = _crema_clip()
    # runtime path: what VoiceAnalyzer.analyze feeds the model
    fake = FakeModel()
    window = audio[-2 * SAMPLE_RATE:]
    assert _analyzer(fake).analyze(window, t=0.0) is not None
    runtime = fake.inputs[-1].reshape(FRAMES, N_MELS)
    np.testing.assert_array_equal(runtime, window_features(window, 2.0))
    # training path: the clean variant of build_features is window_features of the same crop
    x, y = build_features([Clip("c", "s", 4, audio)], variants=1, seed=7)
    crop = _crop(audio, Vad(2).speech_span(audio), np.random.default_rng(7))
    np.testing.assert_allclose(x[0].astype(np.float32), window_features(crop, 2.0), atol=4e-3)
    assert y.tolist() == [4]
    # validation path (train) == analyze_clip's windows (runtime)
    fake2 = FakeModel()
    assert _analyzer(fake2).analyze_clip(audio) is not None
    val = clip_windows(audio, Vad(2))
    np.testing.assert_array_equal(np.stack([i.reshape(FRAMES, N_MELS) for i in fake2.inputs]), val)


# ------------------------------------------------------------------ VAD gating
def test_silence_and_noise_give_no_reading() -> None:
    rng = np.random.default_rng(1)
    an = _analyzer(FakeModel())
    white = rng.standard_normal(2 * SAMPLE_RATE).astype(np.float32) * 0.1
    pink_spec = np.fft.rfft(rng.standard_normal(2 * SAMPLE_RATE))
    pink = np.fft.irfft(pink_spec / np.sqrt(np.arange(1, pink_spec.size + 1))).astype(np.float32)
    pink *= 0.1 / pink.std()
    hum = (0.2 * np.sin(2 * np.pi * 50 * np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    for sig in (np.zeros(2 * SAMPLE_RATE, np.float32), white, pink, hum):
        assert an.analyze(sig, t=1.0) is None
        assert an.analyze_clip(np.tile(sig, 2)) is None


def test_speech_gives_reading_and_vad_helpers() -> None:
    speech = _espeak("Excuse me, I have been waiting here for half an hour")
    vad = Vad(2)
    assert vad.speech_ratio(speech) > 0.3
    assert 0 < vad.speech_only(speech).size < speech.size
    r = _analyzer(FakeModel()).analyze(speech[-2 * SAMPLE_RATE:], t=3.0)
    assert r is not None and r.modality == "voice" and r.t == 3.0
    assert 0.0 <= r.confidence <= 1.0 and r.extra["speech_ratio"] >= 0.3
    noisy = speech + np.random.default_rng(2).standard_normal(speech.size).astype(np.float32) * 0.02
    assert vad.speech_ratio(noisy) > 0.2


def test_a_microphone_dc_offset_does_not_silence_the_vad() -> None:
    """A constant offset raised every frame's level alike: quiet speech no longer rose 6 dB over the floor and the
    windows were dropped as non-speech (no reading, no error), while the gate and the features ignore DC."""
    from edge.voice.features import active_level_dbfs

    speech = _espeak("Excuse me, I have been waiting here for half an hour")
    quiet = speech / np.abs(speech).max() * 0.05  # quiet speech, about -36 dBFS while active
    base = Vad(2).speech_ratio(quiet)  # a new VAD each time: webrtcvad adapts to what it heard before
    assert base > 0.3
    for dc in (0.01, 0.02, 0.05):
        assert abs(Vad(2).speech_ratio(quiet + np.float32(dc)) - base) < 0.05, dc
    level = active_level_dbfs(quiet)
    assert level is not None and abs(active_level_dbfs(quiet + np.float32(0.03)) - level) < 0.5  # type: ignore[operator]


def test_quiet_speech_is_found_as_at_a_good_level_and_quiet_steady_noise_is_not() -> None:
    """webrtcvad's fixed-point thresholds lost speech a few LSB high (RAVDESS shifted by -20 dB): a quiet window is
    raised for it, so speech at about -70 dBFS over a -90 dBFS floor is found as at -30; steady noise still is not,
    at any level, and a quiet sound 10 dB under the microphone's own noise stays buried."""
    from edge.voice.features import active_level_dbfs

    speech = _espeak("Excuse me, I have been waiting here for half an hour")
    level = active_level_dbfs(speech)
    assert level is not None
    rng = np.random.default_rng(3)
    floor = rng.standard_normal(speech.size).astype(np.float32)
    ratios = {}
    for target in (-30.0, -70.0):
        x = speech * np.float32(10 ** ((target - level) / 20)) + floor * np.float32(10 ** ((target - 60) / 20))
        ratios[target] = Vad(2).speech_ratio(x)
    assert ratios[-30.0] > 0.3 and abs(ratios[-70.0] - ratios[-30.0]) < 0.1, ratios
    for noise_dbfs in (-80.0, -60.0, -40.0):
        assert Vad(2).speech_ratio(floor * np.float32(10 ** (noise_dbfs / 20))) == 0.0, noise_dbfs
    mic_noise = floor * np.float32(10 ** (-70 / 20))
    buried = speech * np.float32(10 ** ((-80.0 - level) / 20)) + mic_noise
    assert Vad(2).speech_ratio(buried) < 0.05


def test_vad_rejects_bad_aggressiveness() -> None:
    with pytest.raises(ValueError):
        Vad(4)


# ------------------------------------------------------------------ labels
def test_corpus_label_mapping() -> None:
    from edge.train.voice_data import LABEL_MAP, map_label

    assert map_label("calm") == "neutral"
    assert map_label("fearful") == "fear"
    assert map_label("surprised") == "surprise"
    assert map_label("anger") == "angry" and map_label("happiness") == "happy" and map_label("sadness") == "sad"
    assert map_label("boredom") is None
    with pytest.raises(KeyError):
        map_label("smug")
    assert all(v is None or v in EMOTIONS for v in LABEL_MAP.values())


def test_model_labels_mapped_by_name() -> None:
    labels = ("angry", "neutral", "sad", "happy", "fear", "disgust", "surprise")
    np.testing.assert_array_equal(label_index_map(labels), [EMOTIONS.index(lab) for lab in labels])
    speech = _espeak("I want to speak to the manager now")
    r = _analyzer(FakeModel(labels=labels, hot=0)).analyze(speech[-2 * SAMPLE_RATE:], t=0.0)
    assert r is not None and EMOTIONS[int(np.argmax(r.probs))] == "angry"
    from edge.runtime import ModelError

    with pytest.raises(ModelError):
        label_index_map(("angry", "contempt"))


def test_metrics_auc() -> None:
    from edge.train.voice_data import roc_auc

    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0]), np.array([0, 1], bool)) == pytest.approx(0.5)


# ------------------------------------------------------------------ real model
def test_real_int8_model_on_crema_clip() -> None:
    audio = _crema_clip()
    model = _real_model()
    an = VoiceAnalyzer(model)
    assert an.window_s == pytest.approx(2.0)
    r = an.analyze_clip(audio)
    assert r is not None and r.modality == "voice"
    assert r.probs.shape == (len(EMOTIONS),) and r.probs.dtype == np.float32
    assert r.probs.sum() == pytest.approx(1.0, abs=1e-3) and (r.probs >= 0).all()
    assert 0.0 <= r.confidence <= 1.0
    assert an.analyze(np.zeros(2 * SAMPLE_RATE, np.float32), t=0.0) is None


def test_normalize_gain_leaves_silence_alone() -> None:
    z = np.zeros(SAMPLE_RATE, np.float32)
    np.testing.assert_array_equal(normalize_gain(z), z)


def test_calm_output_is_folded_into_neutral() -> None:
    """A model trained on RAVDESS' 8 native classes: its ``calm`` output counts as neutral, other labels stay."""
    from edge.runtime import ModelError

    labels = (*EMOTIONS, "calm")
    np.testing.assert_array_equal(label_index_map(labels), [*range(len(EMOTIONS)), EMOTIONS.index("neutral")])
    an = _analyzer(FakeModel(labels=labels, hot=len(EMOTIONS)))  # all mass on calm
    speech = _espeak("Could you tell me when my card will arrive")[-2 * SAMPLE_RATE:]
    r = an.analyze(speech, t=0.0)
    assert r is not None and r.probs.shape == (len(EMOTIONS),)
    assert EMOTIONS[int(np.argmax(r.probs))] == "neutral"
    assert r.probs[EMOTIONS.index("neutral")] == pytest.approx(0.02 + 1.0 - 0.02 * 7, abs=1e-5)
    assert r.probs.sum() == pytest.approx(1.0, abs=1e-5)
    clip = an.clip_model_probs(np.concatenate([speech, speech]))
    assert clip is not None and clip[0].shape == (8,) and int(np.argmax(clip[0])) == 7 and clip[2] >= 2
    with pytest.raises(ModelError, match="repeat"):
        label_index_map(("neutral", "calm", "calm"))
    with pytest.raises(ModelError, match="boredom"):
        label_index_map(("neutral", "boredom"))


def test_load_corpus_keeps_calm_only_when_asked(tmp_path: Path) -> None:
    sf = pytest.importorskip("soundfile")
    from edge.train.voice_data import LABELS8, load_corpus, product_index

    tone = (0.1 * np.sin(np.arange(SAMPLE_RATE) * 0.05)).astype(np.float32)
    rows = ["path,speaker,emotion"]
    for i, emo in enumerate(("calm", "neutral", "fearful", "boredom")):
        sf.write(tmp_path / f"{i}.wav", tone, SAMPLE_RATE)
        rows.append(f"{i}.wav,s{i},{emo}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    merged = load_corpus(tmp_path / "m.csv")
    kept = load_corpus(tmp_path / "m.csv", keep_calm=True)
    assert [LABELS8[c.label] for c in merged] == ["neutral", "neutral", "fear"]  # boredom dropped
    assert [LABELS8[c.label] for c in kept] == ["calm", "neutral", "fear"]
    assert [product_index(c.label) for c in kept] == [c.label for c in merged]


def test_replayed_stream_does_not_depend_on_the_one_before() -> None:
    """webrtcvad adapts to what it heard: each replayed file starts a fresh VAD state, so its readings repeat."""
    from edge.pipeline.replay import ReplayResult, _voice_obs

    first = np.concatenate([_crema_clip("1001_DFA_NEU_XX.flac"), _crema_clip("1001_DFA_SAD_XX.flac")])
    clip = np.concatenate([_crema_clip("1002_DFA_NEU_XX.flac"), _crema_clip("1002_DFA_ANG_XX.flac")])
    an = SimpleNamespace(voice=VoiceAnalyzer(_real_model()))

    def readings() -> list[tuple[float, list[float] | None]]:
        obs = [o for _, _, o in _voice_obs(an, clip, SAMPLE_RATE, 0.25, ReplayResult())]  # type: ignore[arg-type]
        return [(o.t, None if o.reading is None else [o.reading.extra["speech_ratio"], *o.reading.probs.tolist()])
                for o in obs]

    fresh = readings()
    list(_voice_obs(an, first, SAMPLE_RATE, 0.25, ReplayResult()))  # type: ignore[arg-type]
    assert readings() == fresh
    assert sum(r is not None for _, r in fresh) >= 3
