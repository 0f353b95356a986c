"""Speaker-held-out figures inside each corpus (beside leave-one-corpus-out): 4 speaker folds, a head per fold,
its encoder taps and C chosen on that fold's own validation speakers.

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
TapRows = Callable[[np.ndarray, tuple[int, ...]], np.ndarray]


def ravdess_code(path: str) -> str:
    """The emotion field of a RAVDESS file name (modality-channel-EMOTION-intensity-...)."""
    return path.rsplit("/", 1)[-1].split("-")[2]


def native_labels(paths: list[str], y: np.ndarray) -> np.ndarray:
    """EMOTIONS labels with RAVDESS calm (emotion code 02) as class 7."""
    calm = np.array([p.startswith("ravdess/") and ravdess_code(p) == "02" for p in paths])
    return np.where(calm, CALM, y)


def _score(y: np.ndarray, p: np.ndarray, native: bool) -> float:
    """What a setting is chosen by: the mean of agitated AUC and 4-class UA (8-class accuracy for native labels)."""
    if native:
        return float((p.argmax(1) == y).mean())
    r = loco_metrics(y, p)
    return float(np.nanmean([r["agitated_auc"], r["ua4"]]))


Split = tuple[np.ndarray, np.ndarray]  # (clips a head is fitted on, clips it is scored on)


def choose(feats: dict[str, Feats], train_rows: Rows, tap_rows: TapRows, yy: np.ndarray, corpus: np.ndarray,
           splits: list[Split], tap_sets: tuple[tuple[int, ...], ...], grid: tuple[float, ...],
           native: bool = False, keep: tuple[tuple[int, ...], float] | None = None, margin: float = 0.0
           ) -> tuple[tuple[int, ...], float]:
    """(taps, C) of the head that, fitted on each split's first mask, scores best on its second (clean clips),
    averaged over the splits; ``keep`` stays unless another setting beats its score by more than ``margin``."""
    best, best_score, kept = (tap_sets[-1], grid[len(grid) // 2]), -np.inf, np.nan
    f = feats["clean"]
    for t in tap_sets:
        scores: dict[float, list[float]] = {c: [] for c in grid}
        for fit, val in splits:  # one split's rows in memory at a time
            x, cl = train_rows(feats, fit, t)
            m = val[f.clip]
            for c in grid:
                head = Head(c, n_out=8 if native else 7).fit(x, yy[cl], balance_weights(yy[cl], corpus[cl]))
                p, _ = clip_probs(head.probs(tap_rows(f.x[m], t)), f.clip[m], f.ratio[m], len(yy))
                scores[c].append(_score(yy[val], p[val], native))
        for c in grid:  # grid order: a tie keeps the first setting
            sc = float(np.mean(scores[c]))
            if (t, c) == keep:
                kept = sc
            if sc > best_score:  # a NaN score (a validation set without agitated clips) never wins
                best, best_score = (t, c), sc
    if keep is not None and np.isfinite(kept) and best_score <= kept + margin:  # near-flat: keep the reference
        return keep
    return best


def within(feats: dict[str, Feats], train_rows: Rows, tap_rows: TapRows, y: np.ndarray, corpus: np.ndarray,
           speaker: np.ndarray, paths: list[str], name: str, tap_sets: tuple[tuple[int, ...], ...],
           grid: tuple[float, ...], noise: frozenset[str] = frozenset(), native: bool = False) -> dict[str, Any]:
    """Per fold of ``name``'s speakers: taps and C chosen on the fold's validation speakers (never its test ones),
    then a head on all its training speakers (clean + augmented), metrics on the fold's test speakers. The voices
    of the training babble (``noise``) are on the training side of every fold, never validated or tested on."""
    mine = np.flatnonzero((corpus == name) & ~np.isin(speaker, sorted(noise)))
    yy = native_labels(paths, y) if native else y
    spk = [Clip(paths[i], str(speaker[i]), 0, np.zeros(1)) for i in mine]
    reserved = np.isin(speaker, sorted(noise)) & (corpus == name)
    folds: list[dict[str, Any]] = []
    pooled_y, pooled_p = [], []  # every fold's test clips, scored together: the figure over the whole corpus
    for k in range(4):
        tr, va, te = fold_speakers(spk, k)
        fit = (np.isin(speaker, sorted(tr)) & (corpus == name)) | reserved
        val = np.isin(speaker, sorted(va)) & (corpus == name)
        test = np.isin(speaker, sorted(te)) & (corpus == name)
        taps, c = choose(feats, train_rows, tap_rows, yy, corpus, [(fit, val)], tap_sets, grid, native)
        x, cl = train_rows(feats, fit | val, taps)
        head = Head(c, n_out=8 if native else 7).fit(x, yy[cl], balance_weights(yy[cl], corpus[cl]))
        f = feats["clean"]
        m = test[f.clip]
        p, _ = clip_probs(head.probs(tap_rows(f.x[m], taps)), f.clip[m], f.ratio[m], len(y))
        chosen = {"taps": list(taps), "C": c}
        pooled_y.append(yy[test])
        pooled_p.append(p[test])
        if native:
            folds.append({"accuracy_8": round(float((p[test].argmax(1) == yy[test]).mean()), 4)} | chosen)
        else:
            folds.append(loco_metrics(y[test], p[test]) | chosen)
    keys = ("accuracy_8",) if native else ("agitated_auc", "ua4", "accuracy", "macro_f1")
    yp, pp = np.concatenate(pooled_y), np.concatenate(pooled_p)
    # pooled over the folds' test speakers (a fold may lack a class, e.g. URDU's anger comes from 4 speakers: a mean
    # of per-fold UAs would average over different class sets); the folds' std is the spread
    pooled = ({"accuracy_8": round(float((pp.argmax(1) == yp).mean()), 4)} if native else loco_metrics(yp, pp))
    return {"folds": folds, "pooled": pooled,
            "mean": {k: round(float(np.nanmean([f[k] for f in folds])), 4) for k in keys},
            "std": {k: round(float(np.nanstd([f[k] for f in folds], ddof=1)), 4) for k in keys}}
