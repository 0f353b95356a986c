"""The classic voice-emotion baseline: openSMILE eGeMAPSv02 functionals + standardised logistic regression.

Needs the ``eval`` extra (``pip install -e .[eval]``: opensmile, scikit-learn); never used by the service. One
88-dimensional functionals vector per whole clip (the literature's setting); ``gain=True`` first scales the clip
with the runtime's ``normalize_gain`` (active speech at -26 dBFS), which removes the recording level that the raw
loudness functionals otherwise carry between corpora.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_data import Clip
from edge.types import EMOTIONS
from edge.voice.features import SAMPLE_RATE, normalize_gain

log = logging.getLogger(__name__)

_SMILE: Any = None


def _smile() -> Any:
    global _SMILE
    if _SMILE is None:
        try:
            import opensmile
        except ImportError as exc:
            raise RuntimeError("the eGeMAPS baseline needs the eval extra: pip install -e '.[eval]'") from exc
        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.Functionals)
    return _SMILE


def audio_digest(x: np.ndarray) -> str:
    """A short digest of a clip's samples, for cache keys."""
    return hashlib.blake2b(np.ascontiguousarray(x, np.float32).tobytes(), digest_size=8).hexdigest()


def egemaps_one(audio: np.ndarray, gain: bool = False) -> np.ndarray:
    """eGeMAPSv02 functionals (88,) of one 16 kHz clip."""
    x = normalize_gain(audio) if gain else np.asarray(audio, np.float32)
    return np.asarray(_smile().process_signal(x, SAMPLE_RATE).to_numpy()[0], np.float64)


def egemaps(clips: list[Clip], gain: bool = False, cache: Path | None = None, tag: str = "clean") -> np.ndarray:
    """(N, 88) features; with ``cache`` (an .npz) features are reused across runs, keyed by path, tag, gain and a
    digest of the audio itself (new noise, or a file re-recorded under the same name, is computed afresh)."""
    keys = [f"{c.path}|{tag}|{int(gain)}|{audio_digest(c.audio)}" for c in clips]
    store: dict[str, np.ndarray] = {}
    if cache is not None and cache.exists():
        d = np.load(cache, allow_pickle=False)
        store = dict(zip(d["keys"].tolist(), d["x"], strict=True))
    todo = [i for i, k in enumerate(keys) if k not in store]
    for n, i in enumerate(todo):
        store[keys[i]] = egemaps_one(clips[i].audio, gain)
        if n % 200 == 199 or n == len(todo) - 1:
            log.info("eGeMAPS %d/%d (%s, gain=%s)", n + 1, len(todo), tag, gain)
            if cache is not None:  # saved as it goes, so an interrupted run resumes
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, keys=np.array(list(store)), x=np.stack(list(store.values())))
    return np.stack([store[k] for k in keys])


def fit(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> Any:
    """StandardScaler + multinomial logistic regression (balanced class weights)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced"))
    return model.fit(np.nan_to_num(x), y)


def fit_weighted(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float = 1.0) -> Any:
    """``fit`` with explicit sample weights (e.g. corpus- and class-balanced) instead of balanced class weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    return model.fit(np.nan_to_num(x), y, logisticregression__sample_weight=w)


def predict_probs(model: Any, x: np.ndarray, n_out: int = len(EMOTIONS)) -> np.ndarray:
    """(N, n_out) probabilities, columns at the model's class ids (EMOTIONS indices for product labels)."""
    p = model.predict_proba(np.nan_to_num(x))
    out = np.zeros((len(x), n_out), np.float64)
    out[:, np.asarray(model.classes_, int)] = p
    return out


def speaker_cv(x: np.ndarray, y: np.ndarray, speakers: list[str], folds: list[set[str]],
               native: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per-fold test metrics (train on the other folds' speakers); ``native`` adds a native-label accuracy."""
    from edge.train.voice_data import classification_metrics

    spk = np.array(speakers)
    out = []
    for test in folds:
        te = np.isin(spk, sorted(test))
        m = fit(x[~te], y[~te])
        res = classification_metrics(y[te], predict_probs(m, x[te]), sorted(set(y[te].tolist())))
        if native is not None:
            mn = fit(x[~te], native[~te])
            res["native_accuracy"] = round(float((mn.predict(np.nan_to_num(x[te])) == native[te]).mean()), 4)
        res["test_speakers"] = sorted(test)
        out.append(res)
    return out
