"""``edge-emotion eval face-slices``: the degradations do what their names say, the figures are right, and the command
says clearly when the data is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.eval import face_slices as fs
from edge.types import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _face(seed: int = 0) -> np.ndarray:
    """A 48x48 grey image with fine texture and a gradient (enough to tell blur, noise and rotation apart)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48]
    return np.clip(60 + 2.5 * xx + 40 * (rng.random((48, 48)) > 0.5), 0, 255).astype(np.uint8)


def _detail(im: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: fine detail."""
    x = im.astype(np.float64)
    return float(np.abs(np.diff(x, axis=1)).mean())


def test_every_condition_keeps_the_crop_shape_and_type_and_is_deterministic() -> None:
    im = _face()
    for name, fn in fs.CONDITIONS.items():
        a, b = fn(im, 3), fn(im, 3)
        assert a.shape == (48, 48) and a.dtype == np.uint8, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(fs.CONDITIONS["clean"](im, 0), im)


def test_degradations_change_what_they_name() -> None:
    im = _face()
    detail = [_detail(fs.small(px)(im, 0)) for px in (16, 24, 32)] + [_detail(im)]
    assert detail == sorted(detail) and len(set(detail)) == 4  # the smaller the face, the less detail
    assert _detail(fs.blur(im, 0)) < 0.5 * _detail(im)
    assert fs.dark(im, 0).mean() == pytest.approx(0.25 * im.mean(), abs=1.0)
    low = fs.low_contrast(im, 0).astype(np.float64)
    assert low.std() == pytest.approx(0.4 * im.astype(np.float64).std(), rel=0.05)
    assert (fs.mask(im, 0)[27:] == 200).all() and (fs.mask(im, 0)[:26] == im[:26]).all()
    band = fs.sunglasses(im, 0)
    assert (band[15:23, 6:42] == 20).all() and (band[30:] == im[30:]).all()
    assert not np.array_equal(fs.jpeg(im, 0), im) and np.abs(fs.jpeg(im, 0).astype(int) - im).mean() < 30
    assert (fs.noisy(im, 0).astype(int) - im.astype(int)).std() == pytest.approx(10, rel=0.1)
    r = fs.roll(20.0)(im, 0)
    assert not np.array_equal(r, im)
    np.testing.assert_allclose(r[24, 24], im[24, 24], atol=30)  # the centre stays where it is
    back = fs.roll(-20.0)(r, 0).astype(int)
    assert np.abs(back[12:36, 12:36] - im[12:36, 12:36]).mean() < np.abs(r[12:36, 12:36].astype(int) -
                                                                          im[12:36, 12:36]).mean()


def test_figures_on_known_readings() -> None:
    """Two neutral faces (one reaching watch), one happy, two angry (one read as angry, reaching watch)."""
    n, h, a, d = (EMOTIONS.index(e) for e in ("neutral", "happy", "angry", "disgust"))
    y = np.array([n, n, h, a, a])
    p = np.zeros((5, len(EMOTIONS)))
    p[0, n] = 1.0
    p[1, [n, d]] = 0.5  # agitated mass 0.5: at the default watch level 0.45
    p[2, h] = 1.0
    p[3, a] = 0.9
    p[3, n] = 0.1
    p[4, n] = 0.8
    p[4, a] = 0.2
    f = fs.figures(y, p)
    assert f["n"] == 5 and f["accuracy"] == pytest.approx(4 / 5)
    assert f["angry_recall"] == pytest.approx(0.5)
    assert f["calm_reaching_watch"] == pytest.approx(1 / 3, abs=1e-4)
    assert f["angry_reaching_watch"] == pytest.approx(0.5)
    md = fs.markdown({"data": "toy", "date": "today", "seconds": 1.0, "conditions": {"clean": {"ours": f}}})
    assert "| clean | 0.800; 0.50;" in md and "33.3 % / 50 %" in md


def test_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "face-slices", "--data", str(tmp_path)]) == 2
    assert "FER2013/FER+ not found" in capsys.readouterr().err


@pytest.mark.skipif(not (DATA / "face" / "ferplus" / "ferplus.npz").is_file(),
                    reason="FER2013/FER+ not staged in ../shared/data")
def test_a_few_faces_through_every_condition(tmp_path: Path) -> None:
    """40 PrivateTest faces: every condition scored, JSON and Markdown written."""
    out = tmp_path / "s.json"
    assert main(["eval", "face-slices", "--limit", "40", "--json", str(out), "--markdown", str(tmp_path / "s.md")]) == 0
    import json

    res = json.loads(out.read_text(encoding="utf-8"))
    assert list(res["conditions"]) == list(fs.CONDITIONS)
    clean = next(iter(res["conditions"]["clean"].values()))
    assert 0.5 < clean["accuracy"] <= 1.0 and clean["n"] <= 40
    assert (tmp_path / "s.md").read_text(encoding="utf-8").count("\n| ") == len(fs.CONDITIONS) + 1


def test_figures_when_a_class_is_absent() -> None:
    """A handful of rows without angry or calm faces: nan for those figures, not a crash."""
    s = EMOTIONS.index("sad")
    p = np.zeros((2, len(EMOTIONS)))
    p[:, s] = 1.0
    f = fs.figures(np.array([s, s]), p)
    assert f["accuracy"] == 1.0 and np.isnan(f["angry_recall"]) and np.isnan(f["calm_reaching_watch"])
    assert np.isnan(f["angry_reaching_watch"])
    with pytest.raises(SystemExit):
        fs.main(["--limit", "-1"])
