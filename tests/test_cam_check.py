"""``edge-emotion check-camera``: the view verdicts on known figures, the figures of real crops, and the command on
images, a video and configs (Grace Hopper's portrait from matplotlib: a real face, offline)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.ops import cam_check as cc
from edge.types import FaceBox

ROOT = Path(__file__).resolve().parents[1]
BLAZEFACE = (ROOT / "models" / "face_detection_short_range.tflite").is_file()


def _grace() -> np.ndarray:
    from matplotlib import cbook

    img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    assert img is not None
    return img


def _sample(**kw: float | None) -> cc.FaceSample:
    base: dict[str, float | None] = {"face_px": 120.0, "brightness": 120.0, "contrast": 50.0, "sharpness": 0.7,
                                     "roll_deg": 2.0}
    base.update(kw)
    return cc.FaceSample(**base)  # type: ignore[arg-type]


def test_a_good_view_is_ok() -> None:
    rep = cc.assess(10, [_sample() for _ in range(10)])
    assert rep.ok and not rep.warnings


@pytest.mark.parametrize("kw, problem, warning", [
    ({"face_px": 28.0}, "28 px tall", None), ({"face_px": 40.0}, None, "less than the model's 48 px"),
    ({"brightness": 40.0}, "too dark", None), ({"brightness": 215.0}, "overexposed", None),
    ({"brightness": 65.0}, None, "dim"), ({"contrast": 20.0}, "little contrast", None),
    ({"contrast": 28.0}, None, "contrast is low"), ({"sharpness": 0.05}, "blurred", None),
    ({"sharpness": 0.15}, None, "softer"), ({"roll_deg": -30.0}, None, "tilted by -30")])
def test_each_limit_gives_its_problem_or_warning(kw: dict[str, float], problem: str | None,
                                                 warning: str | None) -> None:
    """Just past each limit (the medians over the frames): a problem (NOT OK) or only a warning (still OK)."""
    rep = cc.assess(5, [_sample(**kw) for _ in range(5)])
    assert rep.ok == (problem is None), rep.problems
    if problem:
        assert len(rep.problems) == 1 and problem in rep.problems[0]
    if warning:
        assert len(rep.warnings) == 1 and warning in rep.warnings[0]


def test_a_dark_face_is_not_also_blamed_on_contrast() -> None:
    rep = cc.assess(3, [_sample(brightness=30.0, contrast=10.0)] * 3)
    assert len(rep.problems) == 1 and "too dark" in rep.problems[0]


def test_missing_faces_say_why() -> None:
    """Few frames with a customer face: the message names the too-small and out-of-zone frames."""
    rep = cc.assess(10, [_sample()] * 2, too_small=5, outside_zone=3)
    assert not rep.ok and "only 2 of 10 frames" in rep.problems[0]
    assert "5 frames the faces were smaller than analysis.min_face_frac" in rep.problems[0]
    assert "3 frames the faces were outside analysis.customer_zone" in rep.problems[0]
    assert cc.assess(0, []).problems == ["no frames could be read from the camera"]


def test_roll_from_the_eye_keypoints_either_order() -> None:
    box = FaceBox(0, 0, 10, 10, 0.9, ((10.0, 10.0), (20.0, 20.0)))
    assert cc.roll_of(box) == pytest.approx(45.0)
    assert cc.roll_of(FaceBox(0, 0, 10, 10, 0.9, ((20.0, 20.0), (10.0, 10.0)))) == pytest.approx(45.0)
    assert cc.roll_of(FaceBox(0, 0, 10, 10, 0.9)) is None


def test_measure_reads_light_contrast_and_focus_of_a_real_crop() -> None:
    from edge.face.detector import HaarDetector
    from edge.face.preprocess import crop_face

    img = _grace()
    (box,) = HaarDetector().detect(img)
    sharp = cc.measure(box, crop_face(img, box))
    blurred = cc.measure(box, crop_face(cv2.GaussianBlur(img, (0, 0), 6), box))
    dark = cc.measure(box, crop_face((img * 0.25).astype(np.uint8), box))
    assert sharp.face_px == box.h and sharp.sharpness > cc.SOFT and blurred.sharpness < cc.BLURRED
    assert dark.brightness == pytest.approx(0.25 * sharp.brightness, rel=0.05)
    assert cc.DARK < sharp.brightness < cc.GLARE and sharp.contrast > cc.SOFT_CONTRAST


def _write(path: Path, img: np.ndarray) -> str:
    assert cv2.imwrite(str(path), img)
    return str(path)


def test_command_on_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The portrait: OK, exit 0; shrunk to a ~31 px face, darkened, blurred, or no face at all: exit 2 and why."""
    img = _grace()
    assert main(["check-camera", "--file", _write(tmp_path / "a.png", img)]) == 0
    assert "OK: the expression model can use this view" in capsys.readouterr().out
    cases = {"small.png": (cv2.resize(img, (73, 86), interpolation=cv2.INTER_AREA), "px tall: under 32"),
             "dark.png": ((img * 0.2).astype(np.uint8), "too dark"),
             "blur.png": (cv2.GaussianBlur(img, (0, 0), 6), "blurred"),
             "wall.png": (np.full_like(img, 128), "a customer face in only 0 of 1 frames")}
    for name, (im, expect) in cases.items():
        assert main(["check-camera", "--file", _write(tmp_path / name, im)]) == 2, name
        assert expect in capsys.readouterr().out, name


def test_command_on_a_video_and_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 3 s video read at about 4 frames a second; a config whose zone or minimum size leaves the face out."""
    img = _grace()
    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (img.shape[1], img.shape[0]))
    for _ in range(30):
        w.write(img)
    w.release()
    assert main(["check-camera", "--file", str(video), "--seconds", "3"]) == 0
    assert capsys.readouterr().out.startswith("12 frames, a customer face in 12")
    for extra, expect in (("customer_zone = [0.0, 0.0, 0.1, 0.1]", "outside analysis.customer_zone"),
                          ("min_face_frac = 0.9", "smaller than analysis.min_face_frac")):
        cfg = tmp_path / "k.toml"
        cfg.write_text('[identity]\nsite_id = "s1"\nkiosk_id = "k1"\n\n[mqtt]\nenabled = false\n\n'
                       f'[camera]\nsource = "v.avi"\n\n[analysis]\n{extra}\n', encoding="utf-8")
        assert main(["check-camera", "--config", str(cfg), "--seconds", "2"]) == 2  # the config's relative file
        assert expect in capsys.readouterr().out


@pytest.mark.skipif(not BLAZEFACE, reason="BlazeFace not installed (scripts/install-models): no eye keypoints")
def test_command_warns_of_a_tilted_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = _grace()
    tilted = cv2.warpAffine(img, cv2.getRotationMatrix2D((256, 300), 30, 1.0), (img.shape[1], img.shape[0]),
                            borderMode=cv2.BORDER_REPLICATE)
    assert main(["check-camera", "--file", _write(tmp_path / "t.png", tilted)]) == 0
    assert "level the camera" in capsys.readouterr().out


def test_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-camera", "--file", str(tmp_path / "nope.png")]) == 2
    assert "nope.png" in capsys.readouterr().err
    cfg = tmp_path / "k.toml"
    cfg.write_text('[identity]\nsite_id = "s1"\nkiosk_id = "k1"\n\n[mqtt]\nenabled = false\n\n[camera]\n'
                   'enabled = false\n', encoding="utf-8")
    assert main(["check-camera", "--config", str(cfg)]) == 2
    assert "nothing to check" in capsys.readouterr().err


class _Cap:
    """cv2.VideoCapture stand-in: ``good`` frames of the portrait, then a failed read or (``block``) a hang."""

    def __init__(self, good: int, block: bool) -> None:
        self.left, self.block, self.img = good, block, _grace()

    def set(self, *a: object) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left > 0:
            self.left -= 1
            return True, self.img
        if self.block:
            import time

            time.sleep(3600)
        return False, None

    def release(self) -> None:
        return None


@pytest.mark.parametrize("block", [False, True])
def test_a_camera_that_stops_is_a_problem_not_a_pass(block: bool, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Two good frames then a dead stream (or a read that never returns): exit 2, "stopped delivering", no hang."""
    from edge.capture import media
    from edge.ops import cam_capture

    monkeypatch.setattr(media, "open_video", lambda source, kind="auto": _Cap(2, block))
    monkeypatch.setattr(cam_capture, "STALL_S", 0.3)
    assert main(["check-camera", "--source", "0", "--seconds", "3"]) == 2
    out = capsys.readouterr().out
    assert "the camera stopped delivering frames" in out, out


def test_a_face_inside_a_staff_zone_is_never_measured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Staff zones are blanked before detection, as in the service: the portrait under one has no customer face."""
    img = tmp_path / "a.png"
    _write(img, _grace())
    cfg = tmp_path / "k.toml"
    cfg.write_text('[identity]\nsite_id = "s1"\nkiosk_id = "k1"\n\n[mqtt]\nenabled = false\n\n'
                   '[privacy]\nstaff_zones = [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]\n', encoding="utf-8")
    assert main(["check-camera", "--config", str(cfg), "--file", str(img)]) == 2
    out = capsys.readouterr().out
    assert "a customer face in only 0 of 1 frames" in out and "outside" not in out, out
