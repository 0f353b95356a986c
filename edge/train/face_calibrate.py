"""A neutral-logit bias, fitted on validation faces only, so few calm faces reach the alert policy's watch level."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edge.face.preprocess import to_tensor
from edge.types import AGITATED, EMOTIONS

log = logging.getLogger(__name__)

NEUTRAL = EMOTIONS.index("neutral")
CALM = [EMOTIONS.index("neutral"), EMOTIONS.index("happy")]
AGI = [EMOTIONS.index(e) for e in AGITATED]


def shift_neutral(probs: np.ndarray, bias: float) -> np.ndarray:
    """Probabilities after adding ``bias`` to the neutral logit (what folding it into the last layer does)."""
    logit = np.log(np.clip(np.asarray(probs, np.float64), 1e-7, 1.0))
    logit[:, NEUTRAL] += bias
    logit -= logit.max(1, keepdims=True)
    e = np.exp(logit)
    return e / e.sum(1, keepdims=True)


def calm_watch_share(probs: np.ndarray, major: np.ndarray, watch: float) -> float:
    """Share of faces whose majority is neutral or happy and whose agitated mass reaches ``watch``."""
    calm = np.isin(major, CALM)
    if not calm.any():
        return 0.0
    return float((np.asarray(probs)[calm][:, AGI].sum(1) >= watch).mean())


def fit_neutral_bias(probs: np.ndarray, major: np.ndarray, watch: float, max_share: float = 0.02,
                     step: float = 0.05, limit: float = 4.0) -> float:
    """Smallest bias >= 0 (in ``step``s, at most ``limit``) with calm faces reaching watch at most ``max_share``."""
    bias = 0.0
    while bias < limit and calm_watch_share(shift_neutral(probs, bias), major, watch) > max_share:
        bias = round(bias + step, 6)
    return bias


def fold_neutral_bias(model: Any, bias: float, layer: str = "probs") -> None:
    """Add ``bias`` to the neutral unit of the model's softmax layer (no run-time cost)."""
    dense = model.get_layer(layer)
    kernel, b = dense.get_weights()
    b = b.copy()
    b[NEUTRAL] += bias
    dense.set_weights([kernel, b])


def calibrate(model: Any, data: dict[str, np.ndarray], share: float) -> dict[str, float]:
    """Fit the neutral-logit bias on the PublicTest (validation) faces and fold it into ``model``."""
    from edge.policy.config import AlertsConfig

    va = np.flatnonzero(data["keep"] & (data["split"] == "PublicTest") & (data["major"] >= 0))
    watch = AlertsConfig().watch_threshold
    p = model.predict(to_tensor(data["x"][va]), batch_size=256, verbose=0)
    y = data["major"][va]
    bias = fit_neutral_bias(p, y, watch, share)
    fold_neutral_bias(model, bias)
    q = shift_neutral(p, bias)
    res = {"bias": bias, "watch": watch, "calm_watch_before": calm_watch_share(p, y, watch),
           "calm_watch_after": calm_watch_share(q, y, watch), "val_acc_before": float((p.argmax(1) == y).mean()),
           "val_acc_after": float((q.argmax(1) == y).mean()), "val_n": int(len(va))}
    log.info("neutral-logit bias %.2f on %d validation faces: calm faces reaching watch %.3f -> %.3f, acc %.4f -> "
             "%.4f", bias, len(va), res["calm_watch_before"], res["calm_watch_after"], res["val_acc_before"],
             res["val_acc_after"])
    return res
