"""The trained head over pooled Whisper-encoder features, clip-level aggregation and the leave-one-out metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.train.voice_data import roc_auc
from edge.types import AGITATED, EMOTIONS

FOUR = tuple(EMOTIONS.index(e) for e in ("neutral", "happy", "sad", "angry"))


def balance_weights(y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Sample weights giving every group (corpus) the same total and every class within a group the same share."""
    w = np.zeros(len(y), np.float64)
    groups = np.unique(group)
    for g in groups:
        m = group == g
        classes = np.unique(y[m])
        for c in classes:
            mc = m & (y == c)
            w[mc] = 1.0 / (len(groups) * len(classes) * mc.sum())
    return w * len(y)


class Head:
    """Standardisation + multinomial logistic regression on window features; exportable as one Dense layer."""

    def __init__(self, c: float = 0.05, n_out: int = len(EMOTIONS)) -> None:
        """``c``: inverse L2 strength (chosen by speaker folds inside the training corpora)."""
        self.c, self.n_out = c, n_out

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Head:
        """Fit on (N, D) features, EMOTIONS labels and sample weights."""
        from sklearn.linear_model import LogisticRegression

        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        self.lr = LogisticRegression(C=self.c, max_iter=3000).fit((x - self.mu) / self.sd, y, sample_weight=w)
        return self

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel (D, n_out), bias (n_out,)) of the equivalent Dense layer on raw features; absent classes -inf-ish."""
        k = np.zeros((self.mu.size, self.n_out), np.float32)
        b = np.full(self.n_out, -30.0, np.float32)
        coef, icpt = self.lr.coef_, self.lr.intercept_
        if coef.shape[0] == 1:  # two classes: scikit-learn keeps one logit, p(second) = sigmoid(coef . x + icpt)
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, icpt]
        for j, cls in enumerate(self.lr.classes_):
            k[:, int(cls)] = coef[j] / self.sd
            b[int(cls)] = icpt[j] - float(np.sum(coef[j] * self.mu / self.sd))
        return k, b

    def probs(self, x: np.ndarray) -> np.ndarray:
        """(N, n_out) window probabilities."""
        k, b = self.dense()
        z = x @ k + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)


def clip_probs(pw: np.ndarray, clip: np.ndarray, ratio: np.ndarray, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech-ratio-weighted mean of window probabilities per clip (as ``analyze_clip``); (probs, has_reading)."""
    out = np.zeros((n_clips, pw.shape[1]), np.float64)
    wsum = np.zeros(n_clips, np.float64)
    np.add.at(out, clip, pw * ratio[:, None])
    np.add.at(wsum, clip, ratio)
    ok = wsum > 0
    out[ok] /= wsum[ok, None]
    out[~ok] = 1.0 / pw.shape[1]  # no reading: counted as chance, not left out
    return out, ok


def loco_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Agitated-vs-rest AUC, 4-class unweighted accuracy (argmax over neutral/happy/sad/angry), accuracy, macro-F1 and
    per-class recall over the classes in ``y``. A clip without a reading (a uniform row) counts as chance in every
    figure: 1/k credit in each class's recall (k = 4 for UA4, 7 otherwise) and 0.5 against every clip in the AUC
    (a plain argmax made it "neutral"; its agitated mass 3/7 ranked it against real readings)."""
    agi = [EMOTIONS.index(e) for e in AGITATED]
    noread = np.ptp(p, axis=1) <= 1e-12
    four = np.isin(y, FOUR)
    sub, truth = p[four][:, FOUR], np.array([FOUR.index(int(c)) for c in y[four]], np.int64)
    tied = np.isclose(sub, sub.max(1, keepdims=True), rtol=0.0, atol=1e-12)
    credit = tied[np.arange(len(sub)), truth] / tied.sum(1)  # 1/k when the true class is among k tied best
    rec4 = {EMOTIONS[c]: float(credit[truth == i].mean()) for i, c in enumerate(FOUR) if (truth == i).any()}
    k = p.shape[1]
    cm = np.zeros((k, k), np.float64)  # rows: truth; a clip without a reading spread evenly over the columns
    np.add.at(cm, (y[~noread], p[~noread].argmax(1)), 1.0)
    np.add.at(cm, y[noread], 1.0 / k)
    classes = sorted(set(y.tolist()))
    recall = {c: cm[c, c] / cm[c].sum() for c in classes}
    f1 = [0.0 if cm[c, c] == 0 else 2 * cm[c, c] / (cm[c].sum() + cm[:, c].sum()) for c in classes]
    return {"agitated_auc": round(_auc_with_chance(p[:, agi].sum(1), np.isin(y, agi), noread), 4),
            "ua4": round(float(np.mean(list(rec4.values()))), 4),
            "recall4": {k_: round(v, 4) for k_, v in rec4.items()},
            "accuracy": round(float(np.trace(cm) / max(len(y), 1)), 4), "macro_f1": round(float(np.mean(f1)), 4),
            "per_class_recall": {EMOTIONS[c]: round(float(r), 4) for c, r in recall.items()},
            "n": int(len(y)), "clips_without_reading": int(noread.sum())}


def _auc_with_chance(score: np.ndarray, positive: np.ndarray, chance: np.ndarray) -> float:
    """ROC AUC where every pair involving a ``chance`` clip counts 0.5; nan if a side is empty."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    read = ~chance
    pr, nr = int((positive & read).sum()), int((~positive & read).sum())
    known = roc_auc(score[read], positive[read]) * pr * nr if pr and nr else 0.0
    return float((known + 0.5 * (n_pos * n_neg - pr * nr)) / (n_pos * n_neg))


