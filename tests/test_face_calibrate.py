"""The neutral-logit calibration: fitted bias, its effect on calm faces, and folding it into a model."""

from __future__ import annotations

import numpy as np
import pytest

from edge.train.face_calibrate import NEUTRAL, calm_watch_share, fit_neutral_bias, shift_neutral
from edge.types import EMOTIONS


def _probs(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, np.float64)
    return p / p.sum(1, keepdims=True)


def test_shift_neutral_moves_mass_to_neutral_only() -> None:
    p = _probs([[1, 1, 1, 1, 1, 1, 1], [0.1, 0.2, 0.1, 0.1, 5, 0.1, 0.1]])
    q = shift_neutral(p, 1.0)
    assert np.allclose(q.sum(1), 1.0)
    assert (q[:, NEUTRAL] > p[:, NEUTRAL]).all()
    others = [i for i in range(len(EMOTIONS)) if i != NEUTRAL]
    ratio = q[:, others] / p[:, others]
    assert np.allclose(ratio, ratio[:, :1])  # the other classes keep their proportions
    assert np.allclose(shift_neutral(p, 0.0), p)


def test_fit_neutral_bias_meets_the_share_on_calm_faces() -> None:
    rng = np.random.default_rng(0)
    n = 400
    major = np.where(np.arange(n) % 2 == 0, EMOTIONS.index("neutral"), EMOTIONS.index("angry"))
    logits = rng.normal(0, 1, (n, len(EMOTIONS)))
    logits[:, EMOTIONS.index("angry")] += np.where(major == EMOTIONS.index("angry"), 2.5, 0.8)
    logits[:, NEUTRAL] += np.where(major == NEUTRAL, 1.0, 0.0)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert calm_watch_share(p, major, 0.45) > 0.05
    b = fit_neutral_bias(p, major, 0.45, 0.02, step=0.05)
    assert b > 0 and calm_watch_share(shift_neutral(p, b), major, 0.45) <= 0.02
    assert calm_watch_share(shift_neutral(p, b - 0.05), major, 0.45) > 0.02  # the smallest such bias
    assert fit_neutral_bias(p, major, 0.45, 1.0) == 0.0
    assert fit_neutral_bias(p, major, 0.45, 0.0, limit=0.3) == pytest.approx(0.3)  # capped, never unbounded


def test_fold_neutral_bias_equals_shifting_the_output() -> None:
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")
    from tensorflow import keras

    from edge.train.face_calibrate import fold_neutral_bias

    inp = keras.Input((5,))
    model = keras.Model(inp, keras.layers.Dense(len(EMOTIONS), activation="softmax", name="probs")(inp))
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)
    before = model.predict(x, verbose=0)
    fold_neutral_bias(model, 0.7)
    assert np.allclose(model.predict(x, verbose=0), shift_neutral(before, 0.7), atol=1e-5)
