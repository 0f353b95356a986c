"""Voice evaluation command: manifests/folders, label mapping of the corpora, noise mixing, folds, real-model smoke."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge.types import EMOTIONS
from edge.voice.features import SAMPLE_RATE, active_level_dbfs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPEECH = DATA / "speech"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"research data not present: {path} (see ../shared/data/README.md)")
    return path


def _need_model() -> None:
    from edge.runtime import ModelError, load_manifest, load_model

    try:
        load_model(load_manifest(), "voice_emotion", threads=1)
    except ModelError as exc:
        pytest.skip(f"voice_emotion model not available: {exc}")


def _value(out: str, key: str) -> float:
    m = re.search(rf"^{key}\s+([0-9.]+)", out, re.M)
    assert m, f"no '{key}' line in:\n{out}"
    return float(m.group(1))


# ------------------------------------------------------------------ the command
def test_eval_command_on_crema_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    manifest = _need(SPEECH / "crema-d" / "MANIFEST.csv")
    _need_model()
    pytest.importorskip("matplotlib", reason="the confusion PNG needs matplotlib (demo/train/eval extra)")
    png, js = tmp_path / "c.png", tmp_path / "c.json"
    assert main(["eval", "voice", "--manifest", str(manifest), "--png", str(png), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    for key in ("accuracy", "macro_f1", "agitated_auc", "recall", "confusion"):
        assert re.search(rf"^{key}\s", out, re.M), f"missing {key} line"
    res = next(iter(json.loads(js.read_text()).values()))
    assert res["n"] + res["no_reading"] == 12
    cm = np.array(res["confusion"])
    assert cm.sum() == res["n"]
    assert _value(out, "accuracy") == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-4)
    assert _value(out, "accuracy") == pytest.approx(res["accuracy"], abs=1e-4)
    assert 0.0 <= _value(out, "agitated_auc") <= 1.0
    assert set(res["per_class_recall"]) == {"neutral", "happy", "sad", "angry", "disgust", "fear"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_label_column_unknown_label_and_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.train.voice_eval import main

    crema = _need(SPEECH / "crema-d")
    _need_model()
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("path,label\n" + "".join(
        f"{crema / n},{lab}\n" for n, lab in [("1001_DFA_ANG_XX.flac", "angry"), ("1001_DFA_NEU_XX.flac", "neutral"),
                                              ("1002_DFA_SAD_XX.flac", "smug")]))
    assert main(["--manifest", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert "line 4" in err and "'smug'" in err and "--map smug=" in err
    assert main(["--manifest", str(csv_path), "--map", "smug=drop"]) == 0
    assert re.search(r"^clips\s+2 with a reading", capsys.readouterr().out, re.M)
    assert main(["--manifest", str(csv_path), "--map", "smug=bored"]) == 2
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nnope.wav,angry\n")
    assert main(["--manifest", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err


def test_read_folder_of_label_subfolders(tmp_path: Path) -> None:
    from edge.train.voice_eval import read_folder

    crema = _need(SPEECH / "crema-d")
    for sub, name in [("anger", "1001_DFA_ANG_XX.flac"), ("Sadness", "1001_DFA_SAD_XX.flac"),
                      ("boredom", "1002_DFA_NEU_XX.flac")]:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / name).symlink_to(crema / name)  # links, no corpus copies
    items = read_folder(tmp_path)
    assert sorted(i.label for i in items) == ["angry", "sad"]  # boredom dropped by default
    assert len(read_folder(tmp_path, {"boredom": "neutral"})) == 3
    with pytest.raises(ValueError, match="no MANIFEST.csv"):
        read_folder(tmp_path / "boredom")


# ------------------------------------------------------------------ label mapping of the real corpora
def test_corpus_manifests_map_to_product_classes() -> None:
    from edge.train.voice_eval import ravdess_test, read_manifest

    rav = read_manifest(_need(SPEECH / "ravdess" / "MANIFEST.csv"))
    counts = {e: sum(i.label == e for i in rav) for e in EMOTIONS}
    assert counts == {"neutral": 96 + 192, "happy": 192, "surprise": 192, "sad": 192, "angry": 192,
                      "disgust": 192, "fear": 192}  # calm -> neutral
    test = ravdess_test(DATA)
    assert len(test) == 360 and {i.speaker for i in test} == {f"Actor_{k}" for k in range(19, 25)}
    emo_csv = _need(SPEECH / "emodb" / "MANIFEST.csv")
    emo = read_manifest(emo_csv)
    assert {e: sum(i.label == e for i in emo) for e in EMOTIONS} == {
        "neutral": 79, "happy": 71, "surprise": 0, "sad": 62, "angry": 127, "disgust": 46, "fear": 69}
    assert len(read_manifest(emo_csv, {"boredom": "neutral"})) == 535


def test_fold_speakers_partition_and_match_shipped_split() -> None:
    from edge.train.voice_data import Clip, fold_speakers, split_speakers

    clips = [Clip("", f"Actor_{k:02d}", 0, np.zeros(1)) for k in range(1, 25)]
    tests = [fold_speakers(clips, k)[2] for k in range(4)]
    assert [len(t) for t in tests] == [6, 6, 6, 6] and set().union(*tests) == {c.speaker for c in clips}
    assert fold_speakers(clips, 3) == split_speakers(clips)
    for k in range(4):
        tr, va, te = fold_speakers(clips, k)
        assert not (tr & va or tr & te or va & te) and len(va) == 2 and len(tr) == 16
    with pytest.raises(ValueError):
        fold_speakers(clips, 4)


def test_emodb_leave_two_speakers_out_folds_and_their_folders(tmp_path: Path) -> None:
    """--folds 5 on EmoDB's 10 speakers holds out 2 per fold; fold runs get a folder per corpus and fold count."""
    from edge.train.voice import main
    from edge.train.voice_data import Clip, fold_dir, fold_speakers

    clips = [Clip("", f"{k:02d}", 0, np.zeros(1)) for k in (3, 8, 9, 10, 11, 12, 13, 14, 15, 16)]
    tests = [fold_speakers(clips, k, 5)[2] for k in range(5)]
    assert tests[0] == {"03", "08"} and all(len(t) == 2 for t in tests)
    assert set().union(*tests) == {c.speaker for c in clips}
    for k in range(5):
        tr, va, te = fold_speakers(clips, k, 5)
        assert not (tr & va or tr & te or va & te) and len(va) == 1 and len(tr) == 7
    emodb = tmp_path / "emodb" / "MANIFEST.csv"
    assert fold_dir(None, 2) == "fold2" and fold_dir(None, 3, calm=True) == "fold3-calm"
    assert fold_dir(emodb, 4, 5) == "emodb-5x-fold4" and fold_dir(None, 0, 6) == "ravdess-6x-fold0"
    assert fold_dir(None, 1, calm=True, swa=True) == "fold1-calm-swa"
    with pytest.raises(SystemExit):
        main(["--manifest", str(emodb), "--folds", "5", "--fold", "5", "--out", str(tmp_path)])


# ------------------------------------------------------------------ noise
def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    env = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)  # syllable-like on/off at 4 Hz
    return (0.05 * env * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_mix_noise_hits_the_snr() -> None:
    from edge.train.voice_noise import mix_noise

    x = _speechlike()
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    for snr in (20.0, 10.0, 0.0):
        y = mix_noise(x, noise, snr)
        n_db = 10 * np.log10(np.mean((y - x).astype(np.float64) ** 2))
        assert active_level_dbfs(x) - n_db == pytest.approx(snr, abs=0.05)
    silent = np.zeros(SAMPLE_RATE, np.float32)
    np.testing.assert_array_equal(mix_noise(silent, noise[:SAMPLE_RATE], 10.0), silent)


def test_hvac_noise_is_low_frequency_and_babble_levels_equal() -> None:
    from edge.train.voice_noise import _shaped_noise, babble

    n = 4 * SAMPLE_RATE
    spec = np.abs(np.fft.rfft(_shaped_noise(n, np.random.default_rng(0)))) ** 2
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    assert spec[f > 1500].sum() < 0.01 * spec.sum() and spec[f < 15].sum() < 1e-6 * spec.sum()
    t = np.arange(n) / SAMPLE_RATE
    quiet, loud = 0.001 * np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)
    b = babble(n, [quiet.astype(np.float32), loud.astype(np.float32)], np.random.default_rng(1), talkers=2)
    spec = np.abs(np.fft.rfft(b)) ** 2
    p300, p1000 = spec[np.argmin(np.abs(f - 300))], spec[np.argmin(np.abs(f - 1000))]
    assert p300 == pytest.approx(p1000, rel=0.05)  # each talker at the same level


def test_add_noise_is_reproducible_per_clip() -> None:
    from edge.train.voice_data import Clip
    from edge.train.voice_eval import add_noise

    clips = [Clip("a", "s", 0, _speechlike()), Clip("b", "s", 4, _speechlike(seed=1))]
    a, b = add_noise(clips, "hvac", 10.0, None, seed=3), add_noise(clips, "hvac", 10.0, None, seed=3)
    np.testing.assert_array_equal(a[1].audio, b[1].audio)
    assert [c.label for c in a] == [0, 4] and not np.array_equal(a[0].audio, clips[0].audio)
    with pytest.raises(ValueError, match="pool"):
        add_noise(clips, "babble", 10.0, None)


# ------------------------------------------------------------------ metrics and a real classification smoke test
def test_clip_metrics_counts_missing_readings() -> None:
    from edge.train.voice_eval import clip_metrics

    y = np.array([4, 4, 0, 0])
    probs = np.zeros((4, len(EMOTIONS)), np.float32)
    probs[0, 4] = probs[2, 0] = probs[3, 0] = 1.0
    ok = np.array([True, False, True, True])
    res = clip_metrics(y, probs, ok, [0, 4])
    assert res["n"] == 3 and res["no_reading"] == 1 and res["accuracy"] == 1.0
    assert res["agitated_auc"] == 1.0 and res["agitated_auc_all_clips"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no clip"):
        clip_metrics(y, probs, np.zeros(4, bool), [0, 4])


def test_real_model_separates_angry_from_calm_on_held_out_actors() -> None:
    """Smoke classification: strong-intensity angry vs neutral/calm of two never-seen RAVDESS actors."""
    from edge.train.voice_data import roc_auc
    from edge.train.voice_eval import Item, load_analyzer, load_clips, predict_clips

    manifest = _need(SPEECH / "ravdess" / "MANIFEST.csv")
    _need_model()
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["speaker"] in ("Actor_19", "Actor_20")]
    pick = [r for r in rows if (r["emotion"] == "angry" and r["path"].split("-")[3] == "02")
            or r["emotion"] in ("neutral", "calm") and r["path"].split("-")[3] == "01"]
    items = [Item(manifest.parent / r["path"], r["speaker"], "angry" if r["emotion"] == "angry" else "neutral")
             for r in pick]
    assert len(items) == 24
    y, probs, ok = predict_clips(load_analyzer(None), load_clips(items))
    assert ok.all()
    agitated = probs[:, [EMOTIONS.index(e) for e in ("angry", "disgust", "fear")]].sum(1)
    assert roc_auc(agitated, y == EMOTIONS.index("angry")) >= 0.85


def test_predict_clips_does_not_depend_on_clip_order() -> None:
    from edge.train.voice_eval import load_analyzer, load_clips, predict_clips, read_manifest

    _need_model()
    clips = load_clips(read_manifest(_need(SPEECH / "crema-d" / "MANIFEST.csv"))[:4])
    an = load_analyzer(None)
    _, fwd, ok1 = predict_clips(an, clips)
    _, rev, ok2 = predict_clips(an, clips[::-1])
    np.testing.assert_array_equal(ok1, ok2[::-1])
    np.testing.assert_allclose(fwd, rev[::-1], atol=1e-6)


def test_native_scoring_keeps_calm_and_needs_it_in_the_model() -> None:
    """predict_clips(native=True) scores the model's own labels; the product path counts calm as neutral."""
    from types import SimpleNamespace

    from edge.train.voice_data import LABELS8, Clip
    from edge.train.voice_eval import clip_metrics, predict_clips
    from edge.voice.vad import Vad

    class Fake:
        """Analyzer stand-in: every clip's model probabilities put 0.9 on the label given by its first sample."""

        def __init__(self, labels: tuple[str, ...]) -> None:
            self.labels, self.vad = labels, Vad(2)

        def reset(self) -> None:
            self.vad = Vad(2)

        def clip_model_probs(self, audio: np.ndarray) -> tuple[np.ndarray, float, int]:
            p = np.full(len(self.labels), 0.1 / (len(self.labels) - 1))
            p[int(audio[0])] = 0.9
            return p, 1.0, 1

        def analyze_clip(self, audio: np.ndarray) -> SimpleNamespace:
            p = np.zeros(len(EMOTIONS))
            np.add.at(p, [0 if i == 7 else i for i in range(len(self.labels))], self.clip_model_probs(audio)[0])
            return SimpleNamespace(probs=p)

    calm, angry = LABELS8.index("calm"), EMOTIONS.index("angry")
    clips = [Clip("a", "s", calm, np.full(10, calm, np.float32)), Clip("b", "s", angry, np.full(10, angry, np.float32)),
             Clip("c", "s", calm, np.full(10, 0, np.float32))]  # the last: calm read as neutral
    y, probs, ok = predict_clips(Fake(LABELS8), clips, native=True)
    assert y.tolist() == [calm, angry, calm] and probs.shape == (3, 8) and ok.all()
    res = clip_metrics(y, probs, ok, list(range(8)), LABELS8)
    assert res["accuracy"] == pytest.approx(2 / 3, abs=1e-4) and res["per_class_recall"]["calm"] == 0.5
    assert res["labels"] == list(LABELS8) and len(res["confusion"]) == 8
    y7, probs7, _ = predict_clips(Fake(LABELS8), clips)
    assert y7.tolist() == [0, angry, 0] and probs7.shape == (3, len(EMOTIONS))
    assert clip_metrics(y7, probs7, ok, [0, angry])["accuracy"] == 1.0  # calm and neutral are one product class
    with pytest.raises(ValueError, match="calm"):
        predict_clips(Fake(EMOTIONS), clips, native=True)


def _fold_res(acc: float) -> dict[str, float]:
    return {"accuracy": acc, "macro_f1": acc - 0.1, "agitated_auc": 0.9}


def _write_fold(d: Path, epoch: int, test: list[str], results: dict[str, object]) -> None:
    """A fold run's metrics file as edge.train.voice writes it (the fields the fold table reads)."""
    d.mkdir(parents=True)
    (d / "voice_emotion.metrics.json").write_text(json.dumps({
        "selected_epoch": epoch, "speakers": {"test": test}, "results": results}))


def test_fold_summary_reads_fold_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.train.voice_folds import main

    assert main(["--models", str(tmp_path), "--calm"]) == 2 and "no fold metrics" in capsys.readouterr().err
    for fold, acc in ((0, 0.60), (2, 0.50)):
        res = _fold_res(acc)
        _write_fold(tmp_path / "work" / "folds" / f"fold{fold}-calm", 7, [f"A{fold}1", f"A{fold}6"], {
            "RAVDESS held-out x": res, "EmoDB cross-corpus": res,
            "RAVDESS held-out x (8 native classes)": {**res, "accuracy": acc - 0.05}})
    assert main(["--models", str(tmp_path), "--calm"]) == 0
    out = capsys.readouterr().out
    assert "| 0: A01–A06 | 7 | 0.550 | 0.500 | 0.600 |" in out and "| 2: A21–A26 |" in out
    assert "| mean ± sample std (2 folds) | | 0.500 ± 0.071 |" in out


def test_fold_summary_of_another_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """EmoDB's leave-2-speakers-out runs (emodb-5x-foldK) get their own table: held-out and RAVDESS columns."""
    from edge.train.voice_folds import main

    emodb = tmp_path / "emodb" / "MANIFEST.csv"
    for fold, acc in ((0, 0.70), (4, 0.60)):
        res = _fold_res(acc)
        _write_fold(tmp_path / "work" / "folds" / f"emodb-5x-fold{fold}", 9, [f"{fold}1", f"{fold}2"], {
            "emodb held-out x": res, "RAVDESS cross-corpus (all actors)": {**res, "accuracy": 0.3}})
    assert main(["--models", str(tmp_path), "--manifest", str(emodb), "--folds", "5"]) == 0
    out = capsys.readouterr().out
    assert "| emodb held-out acc |" in out and "| RAVDESS cross-corpus acc |" in out
    assert "| 0: 01–02 | 9 | 0.700 | 0.600 | 0.900 | 0.300 |" in out and "| 4: 41–42 |" in out
    assert "| mean ± sample std (2 folds) | | 0.650 ± 0.071 |" in out
    assert main(["--models", str(tmp_path), "--folds", "5"]) == 2  # RAVDESS 5-fold runs: none



def test_baseline_cv_table() -> None:
    """The baseline's per-fold rows and their mean ± sample std, per variant."""
    from edge.train.voice_bench import cv_table

    folds = [{"test_speakers": ["03", "08"], "accuracy": 0.7, "macro_f1": 0.6, "agitated_auc": 0.9},
             {"test_speakers": ["09", "10"], "accuracy": 0.5, "macro_f1": 0.4, "agitated_auc": 0.8}]
    out = cv_table({"raw": folds})
    assert "| raw | 03,08 | 0.700 | 0.600 | 0.900 |" in out
    assert "| raw | mean ± sample std | 0.600 ± 0.141 | 0.500 ± 0.141 | 0.850 ± 0.071 |" in out
