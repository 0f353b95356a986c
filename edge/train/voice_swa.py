"""Stochastic weight averaging (SWA) for the voice CNN: the learning-rate schedule and the running weight mean.

After the cosine schedule's ``epochs``, ``swa`` more epochs run at a constant ``swa_lr``; the weights at the end of
each of them are averaged (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima"), and the batch-norm
statistics of the averaged network are estimated again on training windows. The average is the recipe's output:
no checkpoint is picked on the validation speakers.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def lr_at(epoch: int, epochs: int, lr: float, swa: int = 0, swa_lr: float = 5e-4) -> float:
    """Learning rate of 0-based ``epoch``: cosine from ``lr`` over ``epochs``, then constant ``swa_lr``."""
    if epoch < epochs:
        return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if epoch < epochs + swa:
        return swa_lr
    raise ValueError(f"epoch {epoch} is past the schedule ({epochs} + {swa} SWA epochs)")


class WeightAverage:
    """Running mean of a model's weights, kept in ``path`` (an .npz) so that a resumed run continues it."""

    def __init__(self, path: Path, keep: bool = True) -> None:
        """Load the mean saved at ``path`` if any (``keep``), else discard it: a new run starts a new mean."""
        self.path = path
        self.n = 0
        self.mean: list[np.ndarray] = []
        if not keep:
            path.unlink(missing_ok=True)
        elif path.exists():
            with np.load(path) as d:
                self.n = int(d["n"])
                self.mean = [d[f"w{i}"] for i in range(len(d.files) - 1)]

    def update(self, weights: list[np.ndarray]) -> None:
        """Fold one more set of weights into the mean and save it."""
        if self.n and len(weights) != len(self.mean):
            raise ValueError(f"{self.path}: {len(weights)} weight arrays, the mean has {len(self.mean)}")
        self.n += 1
        self.mean = ([w.astype(np.float64) for w in weights] if self.n == 1 else
                     [m + (w - m) / self.n for m, w in zip(self.mean, weights, strict=True)])
        np.savez(self.path, n=self.n, **{f"w{i}": m for i, m in enumerate(self.mean)})

    def apply(self, model: Any, x: np.ndarray, batches: int = 80, batch: int = 64, seed: int = 0) -> None:
        """Set ``model``'s weights to the mean, then re-estimate its batch-norm statistics on windows of ``x``."""
        import tensorflow as tf

        if not self.n:
            raise ValueError(f"{self.path}: no weights averaged yet")
        model.set_weights([m.astype(np.float32) for m in self.mean])
        bns = [la for la in model.layers if isinstance(la, tf.keras.layers.BatchNormalization)]
        for la in bns:  # start from scratch: the averaged moving statistics belong to no single network
            la.moving_mean.assign(np.zeros(la.moving_mean.shape, np.float32))
            la.moving_variance.assign(np.ones(la.moving_variance.shape, np.float32))
        rng = np.random.default_rng(seed)
        for _ in range(batches):  # momentum 0.9: the start's weight after 80 batches is 0.9**80 < 3e-4
            idx = rng.choice(len(x), size=min(batch, len(x)), replace=False)
            model(x[idx].astype(np.float32)[..., None], training=True)
        log.info("applied the mean of %d epochs' weights; batch-norm statistics from %d batches", self.n, batches)
