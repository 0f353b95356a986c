"""Voice-emotion training data: corpus loading, label mapping, speaker split, augmentation, metrics.

Default corpus: RAVDESS speech. Speakers are split by id: the last 25 % (Actor_19-24) are the never-seen test
set, the last 10 % of the rest (Actor_17-18) select the checkpoint, Actor_01-16 train. EmoDB is kept out of
training as a clean cross-language/cross-corpus test. ``--manifest CSV`` (path,speaker,emotion; paths
relative to the CSV) retrains on any corpus with the same split rule.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edge.eval.metrics import roc_auc
from edge.types import EMOTIONS
from edge.voice.features import SAMPLE_RATE, active_level_dbfs, window_features
from edge.voice.vad import Vad

log = logging.getLogger(__name__)

WINDOW_S = 2.0
WIN_N = int(WINDOW_S * SAMPLE_RATE)
# corpus label -> product class; None = dropped. EmoDB boredom has no product class (low-arousal, neither
# neutral nor sad by the corpus' own definition) so it is dropped rather than forced into one.
LABEL_MAP: dict[str, str | None] = {
    "neutral": "neutral", "calm": "neutral", "happy": "happy", "happiness": "happy", "joy": "happy",
    "surprised": "surprise", "surprise": "surprise", "sad": "sad", "sadness": "sad", "angry": "angry",
    "anger": "angry", "disgust": "disgust", "fearful": "fear", "fear": "fear", "boredom": None,
    "contempt": None, "ang": "angry", "dis": "disgust", "fea": "fear", "hap": "happy", "neu": "neutral",
}


def label_column(cols: set[str], where: object) -> str:
    """The CSV column holding each clip's emotion (``emotion`` or ``label``), one rule for training and evaluation;
    a CSV with both is refused (which one is meant cannot be known)."""
    if {"emotion", "label"} <= cols:
        raise ValueError(f"{where}: has both an 'emotion' and a 'label' column; keep one (training and evaluation "
                         "would otherwise be free to read different ones)")
    return "label" if "label" in cols else "emotion"


# ``--calm`` training keeps RAVDESS calm as an eighth output (its native classes); the runtime folds it into neutral.
CALM = "calm"
LABELS8: tuple[str, ...] = (*EMOTIONS, CALM)


def map_label(name: str) -> str | None:
    """Product emotion for a corpus label (case-insensitive), None if dropped; KeyError if unknown."""
    key = name.strip().lower()
    if key not in LABEL_MAP:
        raise KeyError(f"unknown emotion label {name!r}: add it to edge.train.voice_data.LABEL_MAP")
    return LABEL_MAP[key]


def product_index(label: int) -> int:
    """EMOTIONS index of a LABELS8 index, folded as the runtime folds a model's outputs (calm -> neutral)."""
    from edge.voice.model import FOLDED

    name = LABELS8[label]
    return EMOTIONS.index(FOLDED.get(name, name))


@dataclass
class Clip:
    """One labelled clip held in memory."""

    path: str
    speaker: str
    label: int
    audio: np.ndarray


def load_corpus(manifest: Path, keep_calm: bool = False) -> list[Clip]:
    """Read a path,speaker,emotion CSV and its audio (16 kHz mono); dropped labels are skipped.

    Labels are indices into LABELS8: EMOTIONS, plus 7 = calm when ``keep_calm`` (else calm -> neutral).
    """
    clips = []
    with open(manifest, newline="") as fh:
        for row in csv.DictReader(fh):
            lab = CALM if keep_calm and row["emotion"].strip().lower() == CALM else map_label(row["emotion"])
            if lab is None:
                continue
            audio, sr = sf.read(manifest.parent / row["path"], dtype="float32", always_2d=True)
            if sr != SAMPLE_RATE:
                raise ValueError(f"{row['path']}: {sr} Hz, expected {SAMPLE_RATE}")
            clips.append(Clip(row["path"], row["speaker"], LABELS8.index(lab), audio.mean(axis=1)))
    log.info("loaded %d clips from %s", len(clips), manifest)
    return clips


def split_speakers(clips: list[Clip]) -> tuple[set[str], set[str], set[str]]:
    """(train, val, test) speaker sets: last 25 % of sorted ids test, last 10 % of the rest val."""
    spk = sorted({c.speaker for c in clips})
    n_test = max(1, round(len(spk) * 0.25))
    rest, test = spk[:-n_test], spk[-n_test:]
    n_val = max(1, math.ceil(len(rest) * 0.1))
    return set(rest[:-n_val]), set(rest[-n_val:]), set(test)


def fold_speakers(clips: list[Clip], fold: int, k: int = 4) -> tuple[set[str], set[str], set[str]]:
    """(train, val, test) for speaker fold ``fold`` of ``k`` (sorted ids, contiguous); val = last 10 % of the rest."""
    spk = sorted({c.speaker for c in clips})
    if not 0 <= fold < k or len(spk) < k:
        raise ValueError(f"fold {fold} of {k} impossible with {len(spk)} speakers")
    size = len(spk) / k
    test = spk[round(fold * size):round((fold + 1) * size)]
    rest = [s for s in spk if s not in test]
    n_val = max(1, math.ceil(len(rest) * 0.1))
    return set(rest[:-n_val]), set(rest[-n_val:]), set(test)


def corpus_name(manifest: Path | None) -> str:
    """Name of the training corpus in results: RAVDESS by default, else the manifest's folder (e.g. emodb)."""
    return "RAVDESS" if manifest is None else manifest.resolve().parent.name


def fold_dir(manifest: Path | None, fold: int, folds: int = 4, calm: bool = False, swa: bool = False) -> str:
    """Folder of a fold run under models/work/folds: ``foldK[-calm][-swa]`` for RAVDESS' 4 folds, else tagged."""
    tag = "" if manifest is None and folds == 4 else f"{corpus_name(manifest).lower()}-{folds}x-"
    return f"{tag}fold{fold}{'-calm' if calm else ''}{'-swa' if swa else ''}"


# ---------------------------------------------------------------- augmentation
def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.arange(1, spec.size + 1))
    return np.fft.irfft(spec, n).astype(np.float32)


def _crop(audio: np.ndarray, span: tuple[int, int] | None, rng: np.random.Generator) -> np.ndarray:
    """Random 2 s crop overlapping the speech span (small time shift included); left-padded if short."""
    if audio.size <= WIN_N:
        pad = int(rng.integers(0, WIN_N - audio.size + 1))
        return np.pad(audio, (pad, WIN_N - audio.size - pad))
    lo, hi = span if span else (0, audio.size)
    start_min = max(0, lo - WIN_N // 4)
    start_max = max(start_min, min(audio.size - WIN_N, hi - 3 * WIN_N // 4))
    s = int(rng.integers(start_min, start_max + 1))
    return audio[s:s + WIN_N]


def augment(x: np.ndarray, pool: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Reverb (p .5), noise white/pink/babble at 0-20 dB SNR (p .7), random gain -20..+10 dB."""
    x = x.astype(np.float32)
    if rng.random() < 0.5:
        rt60 = rng.uniform(0.15, 0.8)
        n = int(rt60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * rng.uniform(0.1, 0.5)
        ir[0] = 1.0
        y = np.fft.irfft(np.fft.rfft(x, x.size + n) * np.fft.rfft(ir, x.size + n))[: x.size]
        x = (y * (np.std(x) / (np.std(y) + 1e-9))).astype(np.float32)
    level = active_level_dbfs(x)
    if level is not None and rng.random() < 0.7:
        kind = rng.integers(3)
        if kind == 0:
            noise = rng.standard_normal(x.size).astype(np.float32)
        elif kind == 1:
            noise = _pink(x.size, rng)
        else:
            noise = np.zeros(x.size, np.float32)
            for i in rng.choice(len(pool), size=int(rng.integers(3, 7)), replace=False):
                other = pool[int(i)]
                s = int(rng.integers(0, max(1, other.size - x.size)))
                seg = other[s:s + x.size]
                noise[: seg.size] += seg / (np.std(seg) + 1e-6)
        snr = rng.uniform(0.0, 20.0)
        noise_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2)) + 1e-12)
        x = x + noise * np.float32(10 ** ((level - snr - noise_db) / 20))
    x = x * np.float32(10 ** (rng.uniform(-20.0, 10.0) / 20))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def build_features(clips: list[Clip], variants: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: 1 clean + (variants-1) augmented 2 s crops -> (N, frames, mels) float16 and labels."""
    rng = np.random.default_rng(seed)
    vad = Vad(2)
    pool = [c.audio for c in clips]
    xs, ys = [], []
    for c in clips:
        span = vad.speech_span(c.audio)
        for v in range(variants):
            crop = _crop(c.audio, span, rng)
            wav = crop if v == 0 else augment(crop, pool, rng)
            xs.append(window_features(wav, WINDOW_S).astype(np.float16))
            ys.append(c.label)
    return np.stack(xs), np.asarray(ys, np.int64)


# ---------------------------------------------------------------- metrics
def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: list[int],
                           names: tuple[str, ...] = EMOTIONS) -> dict[str, object]:
    """Accuracy, macro-F1 and per-class recall over ``classes`` present in y, agitated AUC, confusion.

    ``y`` and the columns of ``probs`` index ``names`` (EMOTIONS, or LABELS8 for the native RAVDESS classes).
    """
    from edge.types import AGITATED

    pred = probs.argmax(1)
    k = len(names)
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(y, pred, strict=True):
        cm[t, p] += 1
    recall, f1 = {}, []
    for c in classes:
        tp, support, predicted = cm[c, c], cm[c].sum(), cm[:, c].sum()
        r = tp / support if support else float("nan")
        pr = tp / predicted if predicted else 0.0
        recall[names[c]] = round(float(r), 4)
        f1.append(0.0 if tp == 0 else 2 * pr * r / (pr + r))
    agi = [names.index(e) for e in AGITATED]
    return {
        "n": int(y.size), "accuracy": round(float((pred == y).mean()), 4), "macro_f1": round(float(np.mean(f1)), 4),
        "per_class_recall": recall,
        "agitated_auc": round(roc_auc(probs[:, agi].sum(1), np.isin(y, agi)), 4),
        "confusion": cm.tolist(),
    }
