"""Confusion-matrix figure of the voice model's evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_data import LABELS8


def plot_confusions(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Row-normalised confusion matrices side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 5.5))
    for ax, (name, res) in zip(np.atleast_1d(axes), results.items(), strict=True):
        cm = np.array(res["confusion"], np.float64)
        names = tuple(res.get("labels", LABELS8[:len(cm)]))
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i].sum():
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45)
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}\nacc {res['accuracy']:.3f}, macro-F1 {res['macro_f1']:.3f}, n={res['n']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
