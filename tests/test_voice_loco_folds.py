"""Leave-one-corpus-out evaluation hygiene: babble talkers per corpus, per-clip noise, one code per voice, and
within-corpus settings chosen without the test speakers."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from edge.train.voice_corpora import CorpusClip, _skipped
from edge.train.voice_fe import Feats, _key, conditioned
from edge.train.voice_noise import corpus_pools, pool_for

SR = 16000


def _tone(hz: float, n: int = SR, amp: float = 0.1) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


def _speechlike(f0: float, n: int = SR, seed: int = 0) -> np.ndarray:
    """Harmonic bursts with pauses around ``f0`` (the VAD hears them as speech)."""
    t = np.arange(n) / SR
    f = f0 + 0.2 * f0 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f) / SR) / k for k in range(1, 8))
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.2).astype(float)
    return (0.1 * x * env + 0.002 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1 / SR)[spec.argmax()])


def test_pool_for_gives_own_talkers_to_training_copies_and_others_to_test_noise() -> None:
    """A clip's training babble is its own corpus's reserved voices; a left-out corpus is tested under the other
    corpora's test voices, never under its own nor under any training babble."""
    from edge.train.voice_noise import Pools

    tr = {k: [_tone(hz)] for k, hz in (("a", 200), ("b", 1000), ("c", 3000))}
    te = {k: [_tone(hz)] for k, hz in (("a", 250), ("b", 1100), ("c", 3300))}
    pools = Pools(train=tr, test=te)
    assert pool_for(pools, "a", own=True) == tr["a"]
    assert pool_for(pools, "a", own=False) == te["b"] + te["c"]
    one = Pools(train={"a": tr["a"]}, test={"a": te["a"]})
    assert pool_for(one, "a", own=False) == te["a"]  # one corpus alone (a customer's clips): its own test voices


def test_babble10_without_talkers_is_an_error_not_a_clean_clip() -> None:
    """An empty pool never turns the babble condition into clean audio reported as babble."""
    from edge.train.voice_kiosk import condition

    with pytest.raises(ValueError, match="empty"):
        condition(_tone(440), "babble10", np.random.default_rng(0), [])


def test_babble_test_noise_never_contains_the_clip_s_own_corpus() -> None:
    """babble10 on a corpus-a clip is made of corpus-b talkers only (peak at b's pitch, none at a's)."""
    from edge.train.voice_noise import Pools

    pools = Pools(train={"a": [_tone(300, 3 * SR)], "b": [_tone(700, 3 * SR)]},
                  test={"a": [_tone(200, 3 * SR)], "b": [_tone(1000, 3 * SR)]})
    clip = CorpusClip("a/x.wav", "a:1", 0, _tone(500, 2 * SR, 0.3), corpus="a")
    noisy = conditioned(clip, "babble10", pools)
    noise = noisy - clip.audio
    assert _peak_hz(noise) == pytest.approx(1000, abs=2)
    spec = np.abs(np.fft.rfft(noise))
    f = np.fft.rfftfreq(noise.size, 1 / SR)
    for own_or_training in (200, 300, 700):  # its own corpus's voices, and any training babble
        assert spec[np.abs(f - own_or_training) < 3].max() < 1e-3 * spec.max()


def test_corpus_pools_draw_from_each_corpus_separately_and_reserve_training_voices() -> None:
    """Every corpus's talkers come from its own clips; training babble only from its reserved speakers, test babble
    only from the others."""
    clips = [CorpusClip(f"{k}/{s}-{i}.wav", f"{k}:{s}", 0, _speechlike(hz, SR, 10 * s + i), corpus=k)
             for k, hz in (("a", 150), ("b", 600)) for s in range(8) for i in range(4)]
    pools = corpus_pools(clips, per_corpus=4)
    assert sorted(pools.train) == sorted(pools.test) == ["a", "b"]
    assert len(pools.speakers) == 2 * 3 and {s.split(":")[0] for s in pools.speakers} == {"a", "b"}
    assert all(100 < _peak_hz(s) < 200 for s in pools.train["a"] + pools.test["a"])
    assert all(400 < _peak_hz(s) < 800 for s in pools.train["b"] + pools.test["b"])
    reserved = [c for c in clips if c.speaker in pools.speakers]
    others = [c for c in clips if c.speaker not in pools.speakers]

    def drawn_from(sig: np.ndarray, group: list[CorpusClip]) -> bool:
        return any(np.isin(sig[:200], c.audio).all() for c in group)

    assert all(drawn_from(s, reserved) and not drawn_from(s, others) for k in "ab" for s in pools.train[k])
    assert all(drawn_from(s, others) and not drawn_from(s, reserved) for k in "ab" for s in pools.test[k])


def test_a_clip_s_noise_follows_its_name_not_its_place_and_the_baseline_hears_it_too() -> None:
    """Per-clip noise is seeded by the clip's name: dropping another clip changes no other clip's audio, two clips
    get different noise, and the eGeMAPS baseline's audio is the audio the features hear."""
    from edge.train.voice_loco import condition_clips
    from edge.train.voice_noise import Pools

    pools = Pools(train={"a": [_speechlike(150, 2 * SR, 1)]}, test={"a": [_speechlike(200, 2 * SR, 2)],
                                                                    "b": [_speechlike(600, 2 * SR, 3)]})
    x = CorpusClip("a/x.wav", "a:1", 0, _speechlike(180, SR, 4), corpus="a")
    y = CorpusClip("a/y.wav", "a:2", 0, _speechlike(180, SR, 4), corpus="a")  # same audio, another name
    for cond in ("aug", "speed", "babble10", "hvac10"):
        both = condition_clips([x, y], cond, pools)
        np.testing.assert_array_equal(both[1].audio, condition_clips([y], cond, pools)[0].audio)
        np.testing.assert_array_equal(both[1].audio, conditioned(y, cond, pools))
        if cond not in ("aug", "speed"):  # (a training copy may draw no noise at all)
            assert not np.array_equal(both[0].audio, both[1].audio)


def test_feature_cache_key_follows_the_talkers_a_corpus_can_hear(tmp_path: Path) -> None:
    """Training copies key on their own corpus's pool, test babble on the other corpora's; clean on neither."""
    enc = tmp_path / "enc.tflite"
    enc.write_bytes(b"x")
    clips = [CorpusClip("a/x.wav", "a:1", 0, _tone(440), corpus="a")]
    from edge.train.voice_noise import Pools

    def pools(a: float, b: float) -> Pools:
        return Pools(train={"a": [_tone(a)], "b": [_tone(b)]}, test={"a": [_tone(a + 1)], "b": [_tone(b + 1)]})

    p1 = pools(200, 1000)
    p2 = pools(200, 1200)  # another corpus's talkers changed
    p3 = pools(250, 1000)  # this corpus's talkers changed
    assert _key(clips, "aug", 0, enc, 0.5, p1) == _key(clips, "aug", 0, enc, 0.5, p2)
    assert _key(clips, "aug", 0, enc, 0.5, p1) != _key(clips, "aug", 0, enc, 0.5, p3)
    assert _key(clips, "speed", 0, enc, 0.5, p1) == _key(clips, "speed", 0, enc, 0.5, p2)
    assert _key(clips, "speed", 0, enc, 0.5, p1) != _key(clips, "speed", 0, enc, 0.5, p3)
    assert _key(clips, "speed", 0, enc, 0.5, p1) != _key(clips, "aug", 0, enc, 0.5, p1)
    assert _key(clips, "babble10", 0, enc, 0.5, p1) != _key(clips, "babble10", 0, enc, 0.5, p2)
    assert _key(clips, "babble10", 0, enc, 0.5, p1) == _key(clips, "babble10", 0, enc, 0.5, p3)
    assert _key(clips, "clean", 0, enc, 0.5, p1) == _key(clips, "clean", 0, enc, 0.5, p3)


def test_feature_cache_key_follows_the_audio_path_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed VAD (or mel, or kiosk condition) gets new features: the key holds those modules' source."""
    from edge.train import voice_fe
    from edge.train.voice_noise import Pools

    enc = tmp_path / "enc.tflite"
    enc.write_bytes(b"x")
    clips = [CorpusClip("a/x.wav", "a:1", 0, _tone(440), corpus="a")]
    pools = Pools(train={"a": [_tone(200)]}, test={"a": [_tone(201)]})
    before = _key(clips, "clean", 0, enc, 0.5, pools)
    edited = tmp_path / "vad.py"
    edited.write_bytes(Path(str(voice_fe.vad_module.__file__)).read_bytes() + b"\n# a changed VAD\n")
    monkeypatch.setattr(voice_fe, "vad_module", types.SimpleNamespace(__file__=str(edited)))
    assert _key(clips, "clean", 0, enc, 0.5, pools) != before


def test_ased_skips_duplicates_and_both_files_of_a_cross_emotion_recording(tmp_path: Path) -> None:
    """The second file of each duplicate pair goes; a recording filed under two emotions goes whole."""
    (tmp_path / "duplicates.csv").write_text(
        "path_a,path_b,waveform_corr,lag_s,overlap_s,kind\n"
        "n1.ogg,n2.ogg,1.0,0.0,3.0,same speaker/emotion/sentence (rep 01 vs 02)\n"
        "f2.ogg,a5.ogg,1.0,0.0,2.4,cross-emotion; cross-sentence\n")
    assert _skipped(tmp_path, "ased") == {"n2.ogg", "a5.ogg", "f2.ogg"}
    assert _skipped(tmp_path, "emodb") == set()


def test_one_code_per_voice_in_loading_and_in_the_unseen_speaker_check() -> None:
    """ASED 25 is 23 and 45/52 are 39: a held-out list naming 52 does not make 39's voice unseen."""
    from edge.bench.calm import is_unseen
    from edge.eval.speakers import canonical_speaker

    assert [canonical_speaker("ased", s) for s in ("23", "25", "39", "45", "52", "50")] == \
        ["23", "23", "39", "39", "39", "50"]
    held = {"ased:52", "ased:50", "urdu:SF1"}  # model 0.2.0's list still names 52
    assert not is_unseen("ased", "52", held) and is_unseen("ased", "50", held)
    assert is_unseen("urdu", "SF4", held)


def test_within_corpus_settings_are_chosen_on_validation_speakers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fold's taps and C are chosen on its validation speakers, fitted without them and without its test
    speakers; the training babble's voices are always fitted on, never validated or tested."""
    from edge.train import voice_within
    from edge.train.voice_data import fold_speakers
    from edge.train.voice_loco import _train_rows, tap_rows

    rng = np.random.default_rng(0)
    n_spk, per = 12, 14
    speaker = np.repeat([f"x:{i:02d}" for i in range(n_spk)], per)
    y = np.tile(np.arange(7), n_spk * per // 7)
    corpus = np.array(["x"] * len(y))
    paths = [f"x/{i}.wav" for i in range(len(y))]
    clip = np.repeat(np.arange(len(y)), 3)
    x = rng.standard_normal((len(clip), 2, 8)).astype(np.float32)
    x[:, :, 0] += y[clip][:, None] * 0.8  # a learnable signal
    feats = {"clean": Feats(x, clip, np.ones(len(clip), np.float32))}
    noise = frozenset({"x:05"})
    seen: list[tuple[set[str], set[str]]] = []
    real = voice_within.choose

    def spy(*a: object, **k: object) -> tuple[tuple[int, ...], float]:
        splits = a[5]
        assert isinstance(splits, list) and len(splits) == 1
        fit, val = splits[0]
        seen.append((set(speaker[fit]), set(speaker[val])))
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(voice_within, "choose", spy)
    res = voice_within.within(feats, _train_rows, tap_rows, y, corpus, speaker, paths, "x", ((1,), (2,)),
                              (0.01, 1.0), noise)
    from edge.train.voice_data import Clip

    spk = [Clip(p, s, 0, np.zeros(1)) for p, s in zip(paths, speaker, strict=True) if s not in noise]
    for k, (fit_s, val_s) in enumerate(seen):
        tr, va, te = fold_speakers(spk, k)
        assert val_s == va and fit_s == tr | noise and not (fit_s | val_s) & te
    assert len(seen) == 4 and all({"taps", "C", "accuracy"} <= set(f) for f in res["folds"])
    # the corpus figure pools the folds' test clips (a mean of per-fold UAs averaged over different class sets)
    assert res["pooled"]["n"] == sum(f["n"] for f in res["folds"]) and "ua4" in res["pooled"]


def test_egemaps_cache_is_keyed_by_the_audio_not_only_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """New noise on the same clip (or a file re-recorded under its name) is computed afresh, not served stale."""
    from edge.train import baseline
    from edge.train.voice_data import Clip

    calls: list[float] = []

    def fake(audio: np.ndarray, gain: bool = False) -> np.ndarray:
        calls.append(float(audio[0]))
        return np.full(88, float(audio[0]))

    monkeypatch.setattr(baseline, "egemaps_one", fake)
    cache = tmp_path / "babble10.npz"
    one = [Clip("a/x.wav", "a:1", 0, np.full(10, 0.1, np.float32))]
    two = [Clip("a/x.wav", "a:1", 0, np.full(10, 0.2, np.float32))]
    assert baseline.egemaps(one, True, cache, "babble10")[0, 0] == pytest.approx(0.1)
    assert baseline.egemaps(two, True, cache, "babble10")[0, 0] == pytest.approx(0.2)
    assert baseline.egemaps(one, True, cache, "babble10")[0, 0] == pytest.approx(0.1)
    assert calls == pytest.approx([0.1, 0.2])  # the third call came from the cache


def test_a_corpus_without_speech_windows_adds_no_rows_and_breaks_nothing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent corpus (no window with speech under the condition) gives (0, taps, D) and joins the others; clip
    indices point back into the whole list."""
    from edge.train import voice_fe
    from edge.train.voice_noise import Pools

    class FakeEncoder:
        def __init__(self, path: Path) -> None:
            pass

        def __call__(self, mel: np.ndarray) -> list[np.ndarray]:
            return [np.full((1, 4), float(mel.mean())), np.full((1, 4), 1.0)]

    monkeypatch.setattr(voice_fe, "Encoder", FakeEncoder)
    enc = tmp_path / "enc.tflite"
    enc.write_bytes(b"x")
    clips = [CorpusClip("q/0.wav", "q:1", 0, np.zeros(2 * SR, np.float32), corpus="q"),
             CorpusClip("s/0.wav", "s:1", 0, _speechlike(150, 2 * SR, 1), corpus="s"),
             CorpusClip("q/1.wav", "q:2", 0, np.zeros(2 * SR, np.float32), corpus="q")]
    for _ in range(2):  # computed, then from the cache
        f = voice_fe.features(clips, "clean", enc, tmp_path / "cache", Pools())
        assert f.x.shape[1:] == (2, 4) and len(f.x) == len(f.clip) == len(f.ratio) > 0
        assert set(f.clip.tolist()) == {1}


def test_settings_of_a_left_out_corpus_fold_are_chosen_by_corpora_it_trains_on() -> None:
    """With two or more training corpora each split fits on the others and scores one of them (never the left-out
    corpus, never a babble voice); with one corpus, a quarter of its speakers is scored."""
    from edge.train.voice_loco import selection_splits

    corpus = np.repeat(["a", "b", "c", "d"], 6)
    speaker = np.array([f"{k}:{i % 3}" for i, k in enumerate(corpus)])
    noise = frozenset({"b:0"})
    train = corpus != "d"
    splits = selection_splits(corpus, speaker, train, noise)
    assert len(splits) == 3
    for (fit, val), k in zip(splits, ("a", "b", "c"), strict=True):
        assert set(corpus[val]) == {k} and not (fit & val).any()
        assert set(corpus[fit]) == {"a", "b", "c"} - {k}
        assert "b:0" not in set(speaker[val])
    assert "b:0" in set(speaker[splits[0][0]])  # babble voices still train
    one = selection_splits(corpus, speaker, corpus == "a", noise)
    assert len(one) == 1
    fit, val = one[0]
    assert set(speaker[val]) == {"a:1"} and set(speaker[fit]) == {"a:0", "a:2"}


def test_a_feature_file_cut_short_by_a_killed_run_is_computed_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later run failed on the half-written npz (BadZipFile) until someone deleted it; files are now written
    under a temporary name and renamed, and an unreadable one is recomputed."""
    from edge.train import voice_fe
    from edge.train.voice_noise import Pools

    class FakeEncoder:
        def __init__(self, path: Path) -> None:
            pass

        def __call__(self, mel: np.ndarray) -> list[np.ndarray]:
            return [np.full(4, float(mel.mean()), np.float32)]

    monkeypatch.setattr(voice_fe, "Encoder", FakeEncoder)
    enc = tmp_path / "enc.tflite"
    enc.write_bytes(b"x")
    clips = [CorpusClip("a/x.wav", "a:1", 0, _speechlike(150.0, 3 * SR), corpus="a")]
    pools = Pools(train={"a": []}, test={"a": []})
    cache = tmp_path / "cache"
    first = voice_fe.features(clips, "clean", enc, cache, pools)
    (saved,) = list(cache.glob("*.npz"))
    assert len(first.clip) > 0 and not list(cache.glob("*.part"))
    saved.write_bytes(saved.read_bytes()[:40])  # what a run killed while saving left
    again = voice_fe.features(clips, "clean", enc, cache, pools)
    assert np.allclose(again.x, first.x, atol=1e-3) and np.array_equal(again.clip, first.clip)
    with np.load(saved) as d:  # rewritten whole
        assert d["x"].shape == first.x.shape


def test_speed_copies_change_pitch_and_length_together_and_train_beside_the_augmented_ones() -> None:
    """A speed copy is another-sounding speaker (every frequency and the length scaled by 0.9-1.1, a different
    factor per clip and seed); the head's training rows take clean, augmented and speed copies, never a benchmark
    condition's rows."""
    from edge.train.voice_kiosk import speed
    from edge.train.voice_loco import _train_rows
    from edge.train.voice_noise import Pools

    x = _tone(400, 2 * SR)
    for factor in (0.9, 1.1):
        y = speed(x, factor)
        assert abs(y.size - x.size / factor) <= 1
        assert abs(_peak_hz(y) - 400 * factor) < 3
    pools = Pools(train={"a": [_speechlike(150, 2 * SR, 1)]}, test={"a": [_speechlike(200, 2 * SR, 2)]})
    c = CorpusClip("a/x.wav", "a:1", 0, x, corpus="a")
    sizes = {conditioned(c, "speed", pools, seed).size for seed in range(200, 206)}
    assert len(sizes) > 1 and all(0.9 * x.size - 2 <= n <= x.size / 0.9 + 2 for n in sizes)
    one = np.zeros((1, 2, 3), np.float32)

    def f(v: float) -> Feats:
        return Feats(one + v, np.array([0]), np.array([1.0], np.float32))

    feats = {"clean": f(0), "babble10": f(1), "aug0": f(2), "speed0": f(3), "speed1": f(4)}
    x_rows, clip = _train_rows(feats, np.array([True]), (1, 2))
    assert sorted(x_rows[:, 0].tolist()) == [0, 2, 3, 4] and clip.tolist() == [0, 0, 0, 0]


def test_the_shipped_settings_stay_unless_clearly_beaten() -> None:
    """A setting replaces the reference (``keep``) only when its selection score is higher by more than the margin;
    a reference the grid never scored cannot be kept."""
    from edge.train import voice_within
    from edge.train.voice_loco import _train_rows, tap_rows

    rng = np.random.default_rng(1)
    n = 7 * 40
    y = np.tile(np.arange(7), n // 7)
    corpus = np.array(["x"] * n)
    clip = np.arange(n)
    x = rng.standard_normal((n, 2, 8)).astype(np.float32)
    x[:, 0, 0] += y * 1.5  # only the first tap carries the label
    feats = {"clean": Feats(x, clip, np.ones(n, np.float32))}
    val = np.arange(n) % 4 == 0
    splits = [(~val, val)]
    args = (feats, _train_rows, tap_rows, y, corpus, splits, ((1,), (2,)), (0.01, 1.0))
    free = voice_within.choose(*args)
    assert free[0] == (1,)
    assert voice_within.choose(*args, keep=((2,), 1.0), margin=0.005) == free  # beaten by far: replaced
    assert voice_within.choose(*args, keep=((2,), 1.0), margin=2.0) == ((2,), 1.0)  # within the margin: kept
    assert voice_within.choose(*args, keep=((2,), 0.5), margin=2.0) == free  # never scored: not kept
