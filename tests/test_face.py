"""Face pipeline tests: preprocessing parity with training, customer selection, real int8 model, manifest checks."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.face.detector import HaarDetector, make_detector
from edge.face.expression import FaceAnalyzer, label_map, select_customer
from edge.face.preprocess import DEFAULT_MARGIN, INPUT_SIZE, crop_face, square_region, to_tensor
from edge.runtime import ModelError, load_manifest, load_model
from edge.types import EMOTIONS, FaceBox, Frame

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODELS = ROOT / "models"
FER = DATA / "face" / "fer2013" / "fer2013.npz"
FERPLUS = DATA / "face" / "ferplus" / "ferplus.npz"


def _fer_private(n: int) -> tuple[np.ndarray, np.ndarray]:
    if not (FER.is_file() and FERPLUS.is_file()):
        pytest.skip(f"FER2013/FER+ research data not present at {DATA} (see ../shared/data/README.md)")
    d, p = np.load(FER), np.load(FERPLUS)
    idx = np.flatnonzero((d["usage"] == "PrivateTest") & (p["majority"] >= 0) & (p["majority"] < 7))[:n]
    maj = np.array([EMOTIONS.index(e) for e in ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")])
    return d["images"][idx], maj[p["majority"][idx]]


def _model():  # type: ignore[no-untyped-def]
    if not (MODELS / "manifest.json").is_file() or not (MODELS / "face_expression.tflite").is_file():
        pytest.skip("models/face_expression.tflite not built (python -m edge.train.face)")
    return load_model(load_manifest(MODELS), "face_expression", threads=1)


def _grace() -> np.ndarray:
    import matplotlib.cbook as cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert img is not None
    return img


def test_crop_parity_with_training_tensor() -> None:
    """A FER face upscaled into a camera frame and cropped at its box gives the training tensor back."""
    faces, _ = _fer_private(5)
    for k, face in enumerate(faces):
        side = 192 + 16 * k
        frame = np.full((480, 640, 3), 90, np.uint8)
        px, py = 300 - 40 * k, 120 + 10 * k
        frame[py:py + side, px:px + side] = cv2.cvtColor(
            cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        inner = side / (1 + 2 * DEFAULT_MARGIN)
        box = FaceBox(px + (side - inner) / 2, py + (side - inner) / 2, inner, inner, 1.0)
        assert square_region(box)[2] == side
        got, want = to_tensor(crop_face(frame, box)), to_tensor(face)
        assert got.shape == want.shape == (1, INPUT_SIZE, INPUT_SIZE, 1) and got.dtype == np.float32
        assert float(np.abs(got - want).mean()) < 0.01
        assert float(np.abs(got - want).max()) < 0.15


def test_crop_outside_frame_is_padded() -> None:
    """Boxes hanging over the frame edge still give a 48x48 uint8 crop."""
    frame = np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8)
    for box in (FaceBox(-30, -20, 80, 80, 1.0), FaceBox(120, 90, 80, 80, 1.0), FaceBox(500, 500, 20, 20, 1.0)):
        out = crop_face(frame, box)
        assert out.shape == (INPUT_SIZE, INPUT_SIZE) and out.dtype == np.uint8


def test_select_customer() -> None:
    """Largest face inside the zone and tall enough wins; others are excluded."""
    shape = (480, 640, 3)
    small = FaceBox(300, 200, 20, 20, 0.9)  # 20 px < 0.05 * 480
    left = FaceBox(20, 100, 150, 150, 0.9)  # centre x = 95 -> outside zone starting at 0.25
    mid = FaceBox(250, 150, 100, 100, 0.9)
    mid_big = FaceBox(330, 150, 120, 120, 0.9)
    zone = (0.25, 0.0, 1.0, 1.0)
    assert select_customer([small, left, mid, mid_big], shape, zone, 0.05) == mid_big
    assert select_customer([small, left, mid], shape, zone, 0.05) == mid
    assert select_customer([left], shape, zone, 0.05) is None
    assert select_customer([small], shape, (0, 0, 1, 1), 0.05) is None
    assert select_customer([left, mid], shape, (0, 0, 1, 1), 0.05) == left
    assert select_customer([], shape) is None


def test_label_map_uses_declared_names() -> None:
    """Model outputs are mapped by declared label names, not by position."""
    m = label_map(("happiness", "neutral", "contempt"), 3)
    assert m[0, EMOTIONS.index("happy")] == 1 and m[1, EMOTIONS.index("neutral")] == 1
    assert m[2, EMOTIONS.index("disgust")] == 1
    with pytest.raises(ModelError):
        label_map((), 7)
    with pytest.raises(ModelError, match=r"\['suprise'\] are not product emotions"):  # was a warning only
        label_map(("neutral", "happy", "suprise"), 3)
    with pytest.raises(ModelError, match="repeat a class"):
        label_map(("neutral", "happy", "happy"), 3)


def test_haar_finds_grace_hopper() -> None:
    """The Haar detector finds the one face in matplotlib's public-domain portrait."""
    boxes = HaarDetector().detect(_grace())
    assert len(boxes) == 1 and boxes[0].h > 150 and 0 <= boxes[0].score <= 1


def test_smoke_classification_real_face() -> None:
    """The real int8 model through FaceAnalyzer gives a valid Reading for a real photo."""
    analyzer = FaceAnalyzer(make_detector("haar", None), _model())
    img = _grace()
    r = analyzer.analyze(Frame(image=img, t=12.5, seq=3))
    assert r is not None and r.modality == "face" and r.t == 12.5
    assert r.probs.shape == (len(EMOTIONS),) and r.probs.dtype == np.float32
    assert abs(float(r.probs.sum()) - 1.0) < 1e-4 and 0.0 <= r.confidence <= 1.0
    assert 0.3 < r.extra["face_frac"] < 0.6
    assert analyzer.analyze(Frame(image=np.zeros_like(img), t=13.0, seq=4)) is None


def test_int8_model_accuracy_on_fer_private() -> None:
    """On 300 FER+ PrivateTest faces the shipped int8 model is far above chance (1/7)."""
    faces, labels = _fer_private(300)
    analyzer = FaceAnalyzer(HaarDetector(), _model())
    pred = np.array([analyzer.classify(f).argmax() for f in faces])
    assert float((pred == labels).mean()) > 0.6


def test_manifest_sha256_mismatch_refused(tmp_path: Path) -> None:
    """A model file altered by one byte is refused at load."""
    _model()
    raw = json.loads((MODELS / "manifest.json").read_text())
    entry = raw["models"]["face_expression"]
    keep = ["face_expression"] + ([entry["blend"]["model"]] if "blend" in entry else [])  # and what it blends in
    raw["models"] = {k: raw["models"][k] for k in keep}
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    for k in keep:
        shutil.copy(MODELS / raw["models"][k]["file"], tmp_path / raw["models"][k]["file"])
    dst = tmp_path / "face_expression.tflite"
    load_model(load_manifest(tmp_path), "face_expression")  # intact copy loads
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_model(load_manifest(tmp_path), "face_expression")


def test_blazeface_anchors_and_nms() -> None:
    """896 anchors; weighted NMS merges overlapping boxes and keeps separate ones."""
    from edge.face.blazeface import ANCHORS, nms

    assert ANCHORS.shape == (896, 2) and float(ANCHORS.min()) > 0 and float(ANCHORS.max()) < 1
    kp = np.zeros(12, np.float32)
    dets = np.array([[0.9, 0.1, 0.1, 0.3, 0.3, *kp], [0.6, 0.12, 0.1, 0.32, 0.3, *kp],
                     [0.8, 0.6, 0.6, 0.8, 0.8, *kp]], np.float32)
    out = nms(dets, 0.3, weighted=True)
    assert len(out) == 2 and out[0, 0] == pytest.approx(0.9)
    assert 0.1 < out[0, 1] < 0.12  # weighted average of the merged pair


def test_auto_detector_falls_back_to_haar(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """'auto' uses Haar when the optional BlazeFace file is missing; one that is there but altered is refused like
    any model that fails its checks (it passed check-config with an error line and ran on the weaker detector)."""
    caplog.set_level(logging.INFO, logger="edge.face.detector")
    assert isinstance(make_detector("auto", None), HaarDetector)
    src = MODELS / "face_detection_short_range.tflite"
    raw = {"schema": 1, "models": {}}
    if (MODELS / "manifest.json").is_file():
        raw = json.loads((MODELS / "manifest.json").read_text())
    if "face_detector" not in raw["models"] or not src.is_file():
        pytest.skip("BlazeFace not installed (scripts/install-models)")
    raw["models"] = {"face_detector": raw["models"]["face_detector"]}
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    caplog.clear()
    assert isinstance(make_detector("auto", load_manifest(tmp_path)), HaarDetector)  # file missing
    assert [r.levelno for r in caplog.records if "BlazeFace not installed" in r.getMessage()] == [logging.INFO]
    data = bytearray(src.read_bytes())
    data[100] ^= 0xFF
    (tmp_path / src.name).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="installed but unusable: .*sha256 mismatch"):
        make_detector("auto", load_manifest(tmp_path))
    with pytest.raises(ModelError):
        make_detector("blazeface", load_manifest(tmp_path))


def test_blazeface_finds_grace_hopper() -> None:
    """BlazeFace (when installed) finds one face, re-framed to agree with the Haar box."""
    from edge.face.blazeface import BlazeFaceDetector

    if not (MODELS / "face_detection_short_range.tflite").is_file():
        pytest.skip("BlazeFace not installed (scripts/install-models)")
    det = make_detector("auto", load_manifest(MODELS))
    assert isinstance(det, BlazeFaceDetector)
    img = _grace()
    (b,) = det.detect(img)
    (h,) = HaarDetector().detect(img)
    assert len(b.keypoints) == 6 and b.score > 0.7
    assert abs(b.h / h.h - 1) < 0.15
    assert abs(b.center[0] - h.center[0]) < 0.1 * h.h and abs(b.center[1] - h.center[1]) < 0.1 * h.h
