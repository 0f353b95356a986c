"""Stochastic weight averaging of the voice CNN: schedule, running mean across a resume, batch-norm re-estimation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.train.voice_swa import WeightAverage, lr_at


def test_schedule_is_cosine_then_constant_and_ends() -> None:
    """The cosine part starts at lr and decays; the SWA epochs run at swa_lr; past them is an error."""
    assert lr_at(0, 30, 2e-3, 10) == pytest.approx(2e-3)
    assert lr_at(15, 30, 2e-3, 10) == pytest.approx(1e-3)
    assert lr_at(29, 30, 2e-3, 10) < 1e-5
    assert [lr_at(e, 30, 2e-3, 10, 4e-4) for e in (30, 39)] == [4e-4, 4e-4]
    with pytest.raises(ValueError, match="past the schedule"):
        lr_at(40, 30, 2e-3, 10)
    with pytest.raises(ValueError):
        lr_at(30, 30, 2e-3)


def test_running_mean_survives_a_resume(tmp_path: Path) -> None:
    """The mean of 3 weight sets, with a reload from disk between them, equals numpy's mean."""
    rng = np.random.default_rng(1)
    sets = [[rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)] for _ in range(3)]
    avg = WeightAverage(tmp_path / "m.npz")
    avg.update(sets[0])
    avg = WeightAverage(tmp_path / "m.npz")  # a resumed run
    assert avg.n == 1
    avg.update(sets[1])
    avg.update(sets[2])
    for i in range(2):
        np.testing.assert_allclose(avg.mean[i], np.mean([s[i] for s in sets], axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="3 weight arrays"):
        avg.update(sets[0] + [np.zeros(1)])
    assert WeightAverage(tmp_path / "m.npz", keep=False).n == 0  # a new run does not inherit an old mean
    assert not (tmp_path / "m.npz").exists()


def test_apply_sets_the_mean_and_estimates_batch_norm_again(tmp_path: Path) -> None:
    """After apply the conv weights are the mean and each BN layer's statistics come from the given windows."""
    tf = pytest.importorskip("tensorflow", reason="needs the train extra (tensorflow-cpu)")
    from edge.train.voice import FRAMES, build_model
    from edge.voice.features import N_MELS

    model = build_model(8)
    w0 = model.get_weights()
    avg = WeightAverage(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="no weights"):
        avg.apply(model, np.zeros((4, FRAMES, N_MELS)))
    avg.update(w0)
    avg.update([w * 3 for w in w0])
    x = np.random.default_rng(0).normal(5.0, 2.0, (96, FRAMES, N_MELS)).astype(np.float32)
    avg.apply(model, x, batches=60, batch=32)
    conv = [la for la in model.layers if isinstance(la, tf.keras.layers.Conv2D)][0]
    np.testing.assert_allclose(conv.get_weights()[0], 2 * w0[0], rtol=1e-5)
    bn = [la for la in model.layers if isinstance(la, tf.keras.layers.BatchNormalization)][0]
    pre = conv(tf.constant(x[..., None])).numpy().reshape(-1, bn.moving_mean.shape[0])
    np.testing.assert_allclose(np.asarray(bn.moving_mean), pre.mean(0), rtol=0.05, atol=0.05)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), pre.var(0), rtol=0.1, atol=0.05)
