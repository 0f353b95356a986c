"""Classification metrics over EMOTIONS, their printed form, confusion-matrix PNG and latency timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.types import AGITATED, EMOTIONS


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall/precision and confusion matrix (rows = truth) over EMOTIONS."""
    k = len(EMOTIONS)
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = np.where(recall + precision > 0, 2 * recall * precision / np.maximum(recall + precision, 1e-12), 0.0)
    present = cm.sum(1) > 0
    return {
        "n": int(len(y)), "accuracy": float((y == pred).mean()) if len(y) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class_recall": {e: round(float(r), 4) for e, r in zip(EMOTIONS, recall, strict=True)},
        "per_class_precision": {e: round(float(p), 4) for e, p in zip(EMOTIONS, precision, strict=True)},
        "support": {e: int(s) for e, s in zip(EMOTIONS, cm.sum(1), strict=True)},
        "confusion": cm.tolist(),
    }


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank (Mann-Whitney) formula, ties averaged; nan if one class is absent."""
    pos = np.asarray(positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    s = np.asarray(scores, np.float64)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # average rank of each run of ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    ranks = np.empty(s.size, np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0 + 1.0, ends - starts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def agitation(y: np.ndarray, probs: np.ndarray, watch: float, alert: float) -> dict[str, Any]:
    """Agitated-vs-rest AUC of the agitated mass (angry + disgust + fear) and, per true class, the share of faces
    whose agitated mass reaches the alert policy's ``watch`` and ``alert`` levels."""
    y = np.asarray(y, np.int64)
    agi = [EMOTIONS.index(e) for e in AGITATED]
    mass = np.asarray(probs, np.float64)[:, agi].sum(1)
    reach = {EMOTIONS[c]: {"watch": round(float((mass[y == c] >= watch).mean()), 4),
                           "alert": round(float((mass[y == c] >= alert).mean()), 4)}
             for c in sorted(set(y.tolist()))}
    return {"agitated_auc": round(roc_auc(mass, np.isin(y, agi)), 4), "levels": {"watch": watch, "alert": alert},
            "reach": reach}


def agitation_lines(a: dict[str, Any]) -> list[str]:
    """Printable lines of ``agitation``."""
    lv = a["levels"]
    reach = "  ".join(f"{e} {r['watch']:.2f}/{r['alert']:.2f}" for e, r in a["reach"].items())
    return [f"  agitated-vs-rest AUC {a['agitated_auc']:.4f}",
            f"  agitated mass >= watch {lv['watch']} / alert {lv['alert']}:  {reach}"]


def report_lines(title: str, s: dict[str, Any]) -> list[str]:
    """Printable lines: title with n, accuracy and macro-F1, then per-class recall (classes with support only)."""
    rec = "  ".join(f"{e} {s['per_class_recall'][e]:.3f} (n={s['support'][e]})" for e in EMOTIONS
                    if s["support"][e] > 0)
    return [f"{title}  n={s['n']}",
            f"  accuracy {s['accuracy']:.4f}  macro-F1 {s['macro_f1']:.4f}",
            f"  recall   {rec}"]


def plot_confusion(cm: np.ndarray, path: Path, title: str, ylabel: str = "true (FER+ majority)") -> None:
    """Row-normalised confusion matrix PNG with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def median_ms(fn: Callable[[], object], runs: int = 500, warmup: int = 20) -> float:
    """Median wall milliseconds of ``fn()`` over ``runs`` calls after ``warmup`` untimed calls."""
    return timings(fn, runs, warmup)[0]


def timings(fn: Callable[[], object], runs: int = 500, warmup: int = 20) -> tuple[float, float]:
    """(median wall ms, median CPU ms of the calling thread) of ``fn()``; CPU time ignores preemption by others."""
    for _ in range(warmup):
        fn()
    wall, cpu = np.empty(runs), np.empty(runs)
    for i in range(runs):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return float(np.median(wall) * 1000.0), float(np.median(cpu) * 1000.0)
