"""Face evaluation commands: FER2013 slice, folder and npz modes, the fer peer's preprocessing, detector benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.eval.detector import FRAME_H, FRAME_W, bench_detector, letterbox, wild_frames
from edge.eval.face import main as eval_main
from edge.eval.peer import FER_LABELS, FerHaar, FerPeer, fer_crops, peer_label_names, preprocess
from edge.face.detector import HaarDetector
from edge.runtime import ModelError, load_manifest
from edge.types import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODELS = ROOT / "models"
FER = DATA / "face" / "fer2013" / "fer2013.npz"
FERPLUS = DATA / "face" / "ferplus" / "ferplus.npz"
WILD = DATA / "face" / "faces_wild"
PEER = MODELS / "peers" / "emotion_model_quantized.tflite"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _need_fer() -> None:
    if not (FER.is_file() and FERPLUS.is_file()):
        pytest.skip(f"FER2013/FER+ research data not present at {DATA} (see ../shared/data/README.md)")


def _need_model() -> None:
    if not (MODELS / "face_expression.tflite").is_file():
        pytest.skip("models/face_expression.tflite not built (python -m edge.train.face)")


def _need_peer() -> None:
    if not PEER.is_file():
        pytest.skip("fer peer model not installed (scripts/install-models --peers)")


def _metrics(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "metrics.json").read_text())


def _ours() -> str:
    """The metrics key of the shipped expression model, e.g. "face_expression 0.1.0 int8"."""
    return f"face_expression {load_manifest(MODELS).get('face_expression').version} int8"


def test_eval_fer_slice_prints_metrics_and_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """100 PrivateTest rows: metric lines for both label sets, one readable confusion PNG each, sane accuracy."""
    _need_fer()
    _need_model()
    assert eval_main(["--fer", "--limit", "100", "--out", str(tmp_path), "--latency-runs", "20"]) == 0
    text = capsys.readouterr().out
    for needle in ("| FER+ majority  n=", "| FER2013 original  n=100", "accuracy ", "macro-F1 ", "recall   neutral",
                   "latency per face"):
        assert needle in text
    m = _metrics(tmp_path)["models"][_ours()]
    plus, orig = m["FER+ majority"], m["FER2013 original"]
    assert orig["n"] == 100 and 80 <= plus["n"] < 100  # rows without a FER+ majority are not scored
    assert sum(plus["support"].values()) == plus["n"] and np.array(plus["confusion"]).sum() == plus["n"]
    assert plus["accuracy"] > 0.65 and orig["accuracy"] > 0.4
    for s in (plus, orig):
        png = Path(s["png"])
        assert png.read_bytes()[:8] == PNG_MAGIC and cv2.imread(str(png)) is not None


def test_eval_fer_slice_with_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fer peer is scored on the same 100 rows, with its latency and the accuracy difference printed."""
    _need_fer()
    _need_model()
    _need_peer()
    assert eval_main(["--limit", "100", "--peer", "--out", str(tmp_path), "--latency-runs", "20"]) == 0
    text = capsys.readouterr().out
    assert "fer 25.10.3 emotion_model_quantized.tflite | FER2013 PrivateTest | FER2013 original  n=100" in text
    assert "points vs fer" in text
    models = _metrics(tmp_path)["models"]
    peer = models["fer 25.10.3 emotion_model_quantized.tflite"]
    ours = models[_ours()]
    assert peer["FER+ majority"]["n"] == ours["FER+ majority"]["n"]  # the same rows
    assert peer["FER2013 original"]["accuracy"] > 0.5  # far above chance: label order and scaling are right


def test_eval_folder_of_crops_and_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder <label>/*.png of FER crops (alias folder names, resized crops) is evaluated like the npz path."""
    _need_fer()
    _need_model()
    d, p = np.load(FER), np.load(FERPLUS)
    images, usage, majority = d["images"], d["usage"], p["majority"]
    folder = tmp_path / "faces"
    for name, col in (("happiness", 1), ("neutral", 0), ("surprise", 2)):
        picked = np.flatnonzero((usage == "PrivateTest") & (majority == col))[:4]
        (folder / name).mkdir(parents=True)
        for r in picked:
            img = cv2.resize(images[r], (96, 96), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(folder / name / f"{r}.png"), img)
    assert eval_main(["--folder", str(folder), "--out", str(tmp_path / "out"), "--latency-runs", "5"]) == 0
    text = capsys.readouterr().out
    assert "| folder labels  n=12" in text
    s = _metrics(tmp_path / "out")["models"][_ours()]["folder labels"]
    assert s["support"]["happy"] == 4 and s["support"]["neutral"] == 4 and s["support"]["surprise"] == 4
    assert s["accuracy"] >= 0.5
    (folder / "bored").mkdir()
    assert eval_main(["--folder", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "'bored' is not one of" in capsys.readouterr().err


def test_eval_folder_of_frames_uses_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--frames sends full photos through detector -> customer -> crop -> model; a blank frame is a miss."""
    _need_model()
    import matplotlib.cbook as cbook

    (tmp_path / "neutral").mkdir()
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    cv2.imwrite(str(tmp_path / "neutral" / "grace.jpg"), grace)
    cv2.imwrite(str(tmp_path / "neutral" / "blank.png"), np.zeros((480, 640, 3), np.uint8))
    out = tmp_path / "out"
    assert eval_main(["--folder", str(tmp_path), "--frames", "--detector", "haar", "--out", str(out),
                      "--latency-runs", "5"]) == 0
    assert "customer face found in 1/2 frames" in capsys.readouterr().out
    s = _metrics(out)["models"][_ours()]["folder labels"]
    assert s["n"] == 1 and s["faces_found"] == 1 and _metrics(out)["detector"] == "HaarDetector"


def test_eval_npz_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An npz with string labels or label_names indices is read; bad indices or unnamed indices are clear errors."""
    _need_model()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (6, 48, 48), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.array(["happy", "anger", "sad", "fear", "neutral", "sad"]))
    np.savez(tmp_path / "b.npz", images=imgs, labels=np.array([0, 1, 1, 0, 0, 1]), label_names=np.array(["sad", "joy"]))
    np.savez(tmp_path / "c.npz", images=imgs, labels=np.array([0, 1, 1, 0, 0, 9]),
             label_names=np.array(["sad", "happy"]))
    np.savez(tmp_path / "d.npz", images=imgs, labels=np.array([0, 1, 1, 0, 0, 1]))
    assert eval_main(["--npz", str(tmp_path / "a.npz"), "--out", str(tmp_path / "o"), "--latency-runs", "5"]) == 0
    s = _metrics(tmp_path / "o")["models"][_ours()]["npz labels"]
    assert s["n"] == 6 and s["support"]["sad"] == 2 and s["support"]["angry"] == 1
    capsys.readouterr()
    assert eval_main(["--npz", str(tmp_path / "b.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "'joy' is not one of" in capsys.readouterr().err
    assert eval_main(["--npz", str(tmp_path / "c.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "label indices outside" in capsys.readouterr().err
    # integer labels without their names are refused, never read in our class order
    assert eval_main(["--npz", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "'label_names'" in capsys.readouterr().err
    # float images (0..1) would be scored as black faces; object labels, no rows and not-an-npz are clear errors
    bad = {"e": {"images": imgs / 255.0, "labels": np.array(["happy"] * 6)},
           "f": {"images": imgs, "labels": np.array(["happy"] * 6, dtype=object)},
           "g": {"images": imgs[:0], "labels": np.array([], dtype=str)}}
    for name, arrays in bad.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)  # type: ignore[arg-type]
    (tmp_path / "h.npz").write_text("path,label\n")
    for name, message in (("e", "must be uint8"), ("f", "not a readable .npz of plain arrays"), ("g", "N > 0"),
                          ("h", "not a readable .npz")):
        assert eval_main(["--npz", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "o")]) == 2, name
        err = capsys.readouterr().err
        assert message in err and f"{name}.npz" in err, (name, err)


def test_eval_npz_reads_training_votes_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The npz training reads (votes + vote_names, usage) is scored as it: PrivateTest rows by default, a tie left
    out; ``--split all`` scores every row; ``--split`` without usage is a clear error."""
    _need_model()
    imgs = np.random.default_rng(2).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    votes = np.array([[3, 0], [0, 3], [2, 2], [4, 1], [0, 5], [1, 0]])
    usage = np.array(["Training", "Training", "PrivateTest", "PrivateTest", "PrivateTest", "PublicTest"])
    np.savez(tmp_path / "v.npz", images=imgs, votes=votes, vote_names=np.array(["anger", "happiness"]), usage=usage)
    out = tmp_path / "o"
    assert eval_main(["--npz", str(tmp_path / "v.npz"), "--out", str(out), "--latency-runs", "2"]) == 0
    s = _metrics(out)["models"][_ours()]["npz labels"]
    assert s["n"] == 2 and s["support"]["angry"] == 1 and s["support"]["happy"] == 1  # row 2's 2:2 tie left out
    assert eval_main(["--npz", str(tmp_path / "v.npz"), "--out", str(out), "--latency-runs", "2",
                      "--split", "all"]) == 0
    assert _metrics(out)["models"][_ours()]["npz labels"]["n"] == 5
    np.savez(tmp_path / "l.npz", images=imgs, labels=np.array(["happy"] * 6))
    capsys.readouterr()
    assert eval_main(["--npz", str(tmp_path / "l.npz"), "--out", str(out), "--split", "PublicTest"]) == 2
    assert "needs a 'usage' array" in capsys.readouterr().err


def test_eval_npz_and_folder_edges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes labels are their text; contempt follows --contempt in folders and npz files too (it was always scored
    as disgust there); a .npy, a 2-channel or an empty image are clear errors, not tracebacks; counts are checked."""
    _need_model()
    imgs = np.random.default_rng(1).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    np.savez(tmp_path / "b.npz", images=imgs, labels=np.array([b"angry", b"happy", b"contempt", b"sad"]))
    out = tmp_path / "o"
    assert eval_main(["--npz", str(tmp_path / "b.npz"), "--out", str(out), "--latency-runs", "2"]) == 0
    s = _metrics(out)["models"][_ours()]["npz labels"]
    assert s["n"] == 3 and s["support"]["angry"] == 1 and s["support"]["disgust"] == 0
    assert eval_main(["--npz", str(tmp_path / "b.npz"), "--out", str(out), "--latency-runs", "2",
                      "--contempt", "disgust"]) == 0
    assert _metrics(out)["models"][_ours()]["npz labels"]["support"]["disgust"] == 1
    for name in ("happy", "contempt"):
        (tmp_path / "f" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "f" / name / "a.png"), imgs[0])
    assert eval_main(["--folder", str(tmp_path / "f"), "--out", str(out), "--latency-runs", "2"]) == 0
    assert _metrics(out)["models"][_ours()]["folder labels"]["n"] == 1
    capsys.readouterr()
    np.save(tmp_path / "plain.npy", imgs)
    np.savez(tmp_path / "c2.npz", images=np.zeros((2, 48, 48, 2), np.uint8), labels=np.array(["happy"] * 2))
    np.savez(tmp_path / "e0.npz", images=np.zeros((2, 0, 0), np.uint8), labels=np.array(["happy"] * 2))
    np.savez(tmp_path / "u8.npz", images=imgs[:1], labels=np.array(["愤怒".encode()]))  # UTF-8 bytes, not ASCII
    for name, message in (("plain.npy", "a single array (.npy)"), ("c2.npz", "C 1, 3 or 4"), ("e0.npz", "H, W > 0"),
                          ("u8.npz", "label '愤怒' is not one of")):
        assert eval_main(["--npz", str(tmp_path / name), "--out", str(out)]) == 2, name
        assert message in capsys.readouterr().err, name
    for argv in (["--limit", "-3"], ["--threads", "0"], ["--latency-runs", "-1"], ["--frames", "--peer-hdf5"]):
        with pytest.raises(SystemExit) as exc:
            eval_main(argv + ["--out", str(out)])
        assert exc.value.code == 2, argv


def test_eval_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the research data the command exits 2 naming the missing files."""
    assert eval_main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "FER2013/FER+ not found" in capsys.readouterr().err
    assert cli_main(["eval", "detector", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_peer_missing_or_altered_is_refused(tmp_path: Path) -> None:
    """The peer file is verified by sha256; a missing or altered file names the install command."""
    with pytest.raises(ModelError, match="install-models --peers"):
        FerPeer(tmp_path)
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "emotion_model_quantized.tflite").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="sha256"):
        FerPeer(tmp_path)


def test_peer_preprocessing_and_crop_geometry() -> None:
    """fer's scaling to [-1, 1] at 64x64, its FER2013 label order, and its square + offset + mean-padded crop."""
    assert peer_label_names() == FER_LABELS and set(FER_LABELS) == set(EMOTIONS)
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    x = preprocess(face)
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert preprocess(np.zeros((48, 48), np.uint8)).max() == -1.0
    assert preprocess(np.full((9, 9), 255, np.uint8)).min() == 1.0
    gray = (np.indices((300, 400)).sum(0) % 251).astype(np.uint8)
    # w < h: the box is widened around its centre to 100x100, then 10 px added on every side.
    ((box, crop),) = fer_crops(gray, [(100, 50, 80, 100)])
    assert box == (100, 50, 80, 100)
    assert np.array_equal(crop, cv2.resize(gray[40:160, 80:200], (64, 64)))
    # At the frame corner fer's 40 px border, filled with the mean of the bottom two rows, is inside the crop.
    ((_, corner),) = fer_crops(gray, [(0, 0, 60, 60)])
    mean = cv2.mean(gray[-2:, :])[0]
    padded = cv2.copyMakeBorder(gray, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=[mean, mean, mean])
    assert np.array_equal(corner, cv2.resize(padded[30:110, 30:110], (64, 64)))


def _wild_truth(names: list[str]) -> list[int]:
    with open(WILD / "index.csv", newline="") as fh:
        rows = {r["file"]: int(r["faces_true"]) for r in csv.DictReader(fh)}
    return [rows[n] for n in names]


def test_detector_benchmark_on_three_wild_photos() -> None:
    """Counts on couple/img1/img10 (2+1+1 faces) agree with index.csv for BlazeFace (if installed) and both Haars."""
    if not (WILD / "index.csv").is_file():
        pytest.skip(f"faces_wild research photos not present at {WILD}")
    names = ["couple.jpg", "img1.jpg", "img10.jpg"]
    frames = wild_frames(DATA, names)
    assert [f.true for f in frames] == _wild_truth(names) == [2, 1, 1]
    assert all(f.image.shape == (FRAME_H, FRAME_W, 3) for f in frames)
    dets = {"haar": HaarDetector(threads=1)}
    if (MODELS / "face_detection_short_range.tflite").is_file():
        from edge.face.blazeface import BlazeFaceDetector

        dets["blazeface"] = BlazeFaceDetector.from_manifest(load_manifest(MODELS))
    for det in dets.values():
        r = bench_detector(det, frames, repeats=1)
        per = r["per_frame"]
        assert [p["detected"] for p in per] == [len(det.detect(f.image)) for f in frames]
        assert r["faces_true"] == 4 and r["faces_found"] == sum(min(p["detected"], p["true"]) for p in per)
        assert r["recall"] == 1.0 and r["false_detections"] == 0 and r["exact_count_frames"] == 3
        assert r["ms_median"] > 0
    fer_haar = FerHaar()
    assert [len(fer_haar.find_faces(cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY))) for f in frames] == [2, 1, 1]


def test_letterbox_keeps_aspect() -> None:
    """A portrait photo is scaled to fit 640x480 and centred on black."""
    img = np.full((1000, 500, 3), 200, np.uint8)
    out = letterbox(img)
    assert out.shape == (480, 640, 3)
    cols = np.flatnonzero(out[240, :, 0] > 0)
    assert cols[0] == 200 and cols[-1] == 439 and out[0, 320, 0] == 200


def test_cli_eval_detector_dispatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``edge-emotion eval detector`` prints the table (one photo, no face-path timing)."""
    if not (WILD / "index.csv").is_file():
        pytest.skip(f"faces_wild research photos not present at {WILD}")
    assert cli_main(["eval", "detector", "--files", "img1.jpg", "--repeats", "1", "--no-paths",
                     "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "Haar (our fallback)" in text and "recall" in text and (tmp_path / "detector.json").is_file()


def test_agitation_metrics_by_hand() -> None:
    """AUC of the agitated mass and the per-class watch/alert reach, on numbers worked out by hand."""
    from edge.eval.metrics import agitation, roc_auc

    e = EMOTIONS.index
    y = np.array([e("angry"), e("angry"), e("neutral"), e("happy"), e("fear")])
    p = np.zeros((5, len(EMOTIONS)), np.float32)
    p[0, e("angry")], p[0, e("neutral")] = 0.7, 0.3   # agitated mass 0.7: watch and alert
    p[1, e("disgust")], p[1, e("neutral")] = 0.5, 0.5  # 0.5: watch only
    p[2, e("neutral")] = 1.0                            # 0.0
    p[3, e("happy")], p[3, e("fear")] = 0.4, 0.6      # 0.6: a false agitated reading on a happy face
    p[4, e("fear")], p[4, e("sad")] = 0.2, 0.8          # 0.2
    a = agitation(y, p, watch=0.45, alert=0.6)
    # positives (0.7, 0.5, 0.2) vs negatives (0.0, 0.6): pairs won 2 + 1 + 1 = 4 of 6
    assert a["agitated_auc"] == pytest.approx(4 / 6, abs=1e-4)
    assert a["reach"]["angry"] == {"watch": 1.0, "alert": 0.5}
    assert a["reach"]["happy"] == {"watch": 1.0, "alert": 1.0} and a["reach"]["neutral"]["watch"] == 0.0
    assert roc_auc(np.array([1.0, 1.0, 0.0]), np.array([True, False, False])) == pytest.approx(0.75)


def test_eval_ckplus_reports_agitation_and_drops_contempt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CK+48 is read with its class names; contempt is dropped (or scored as disgust) and the output says which."""
    _need_model()
    data = DATA
    if not (data / "face" / "ckplus48" / "ckplus48.npz").is_file():
        pytest.skip(f"CK+48 not staged under {data}/face/ckplus48 (research data, never committed)")
    assert eval_main(["--ckplus", "--data", str(data), "--out", str(tmp_path / "o"), "--latency-runs", "5"]) == 0
    out = capsys.readouterr().out
    assert "contempt dropped" in out and "agitated-vs-rest AUC" in out
    s = _metrics(tmp_path / "o")["models"][_ours()]["CK+ labels"]
    assert s["n"] == 927 and s["support"]["neutral"] == 0 and s["support"]["angry"] == 135
    assert set(s["reach"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise"}
    assert 0.5 < s["agitated_auc"] <= 1.0
    assert eval_main(["--ckplus", "--contempt", "disgust", "--data", str(data), "--out", str(tmp_path / "p"),
                      "--latency-runs", "5"]) == 0
    assert _metrics(tmp_path / "p")["models"][_ours()]["CK+ labels"]["support"]["disgust"] == 177 + 54
