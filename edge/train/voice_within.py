"""Speaker-held-out figures inside each corpus (beside leave-one-corpus-out): 4 speaker folds, a head per fold.

For RAVDESS also its 8 native classes (calm its own class, as the earlier CNN's ``--calm`` folds were scored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edge.train.voice_data import Clip, fold_speakers
from edge.train.voice_fe import Feats
from edge.train.voice_head import Head, balance_weights, clip_probs, loco_metrics

CALM = 7  # the eighth output of a native-class RAVDESS head
Rows = Callable[[dict[str, Feats], np.ndarray, tuple[int, ...]], tuple[np.ndarray, np.ndarray]]


def ravdess_code(path: str) -> str:
    """The emotion field of a RAVDESS file name (modality-channel-EMOTION-intensity-...)."""
    return path.rsplit("/", 1)[-1].split("-")[2]


def native_labels(paths: list[str], y: np.ndarray) -> np.ndarray:
    """EMOTIONS labels with RAVDESS calm (emotion code 02) as class 7."""
    calm = np.array([p.startswith("ravdess/") and ravdess_code(p) == "02" for p in paths])
    return np.where(calm, CALM, y)


def within(feats: dict[str, Feats], train_rows: Rows, tap_rows: Callable[[np.ndarray, tuple[int, ...]], np.ndarray],
           y: np.ndarray, corpus: np.ndarray, speaker: np.ndarray, paths: list[str], taps: tuple[int, ...],
           c: float, name: str, native: bool = False) -> dict[str, Any]:
    """Per fold of ``name``'s speakers: head on the other speakers (clean + augmented), metrics on the fold."""
    mine = np.flatnonzero(corpus == name)
    yy = native_labels(paths, y) if native else y
    spk = [Clip(paths[i], str(speaker[i]), 0, np.zeros(1)) for i in mine]
    folds = []
    for k in range(4):
        tr, va, te = fold_speakers(spk, k)
        train = np.isin(speaker, sorted(tr | va)) & (corpus == name)
        test = np.isin(speaker, sorted(te)) & (corpus == name)
        x, cl = train_rows(feats, train, taps)
        head = Head(c, n_out=8 if native else 7).fit(x, yy[cl], balance_weights(yy[cl], corpus[cl]))
        f = feats["clean"]
        m = test[f.clip]
        p, _ = clip_probs(head.probs(tap_rows(f.x[m], taps)), f.clip[m], f.ratio[m], len(y))
        if native:
            folds.append({"accuracy_8": round(float((p[test].argmax(1) == yy[test]).mean()), 4)})
        else:
            folds.append(loco_metrics(y[test], p[test]))
    keys = ("accuracy_8",) if native else ("agitated_auc", "ua4", "accuracy", "macro_f1")
    # a fold without agitated clips has no AUC (URDU's anger comes from 4 speakers): averaged over the others
    return {"folds": folds, "mean": {k: round(float(np.nanmean([f[k] for f in folds])), 4) for k in keys},
            "std": {k: round(float(np.nanstd([f[k] for f in folds], ddof=1)), 4) for k in keys}}
